/**
 * The README's configuration reference against the code: each table (round and campaign input,
 * environment variables, failure types) is exactly what the schemas and tables the code reads
 * generate (`npx tsx scripts/readme-tables.ts` rewrites them), and the deployment section names
 * the task queues the workers poll.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { REFERENCE_TABLES, withReferenceTables } from '../cli/reference.js';
import { TASK_QUEUES } from '../contract/workers.js';
import { REPO_ROOT } from './servers.js';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

/** The text under a heading, up to the next heading of the same or a higher level. */
function section(heading: string): string {
  const level = /^#+/.exec(heading)?.[0].length ?? 2;
  const lines = README.split('\n');
  const start = lines.indexOf(heading);
  expect(start, `README has "${heading}"`).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((line, i) => i > start && new RegExp(`^#{1,${level}} `).test(line));
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

describe('README "Configuration"', () => {
  it.each(Object.keys(REFERENCE_TABLES))('%s holds the table the code generates', (heading) => {
    expect(section(heading)).toContain(REFERENCE_TABLES[heading]!());
  });

  it('has nothing else that the generated tables would change', () => {
    expect(withReferenceTables(README)).toBe(README);
  });
});

describe('README "Deploying with GPU workers"', () => {
  it('names the task queues the workers poll', () => {
    const text = section('## Deploying with GPU workers');
    for (const queue of Object.values(TASK_QUEUES)) expect(text).toContain(`\`${queue}\``);
  });
});
