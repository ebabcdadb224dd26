/**
 * The README's configuration reference against the code: every field the round and campaign
 * schema (config/round.ts) accepts has a row with its default, no row names a field that is
 * gone, and the same for the environment variables (config/environment.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ENVIRONMENT } from '../config/environment.js';
import { validateRoundInput } from '../config/round.js';
import { REPO_ROOT } from './servers.js';
import { TASK_QUEUES } from '../contract/activities.js';
import { validateCampaignInput } from '../config/campaign.js';

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

/** Table rows whose first cell is `code`: name -> the other cells, trimmed. */
function rows(text: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const name = /^`([^`]+)`$/.exec(cells[0] ?? '')?.[1];
    if (name !== undefined) found.set(name, cells.slice(1));
  }
  return found;
}

type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

const isObject = (v: Json): v is { readonly [key: string]: Json } => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Every field of a validated input as `path -> value`: objects are walked into, except prompt
 * sources and empty maps, which are one field each.
 */
function flatten(value: Json, prefix = ''): Map<string, Json> {
  const out = new Map<string, Json>();
  if (!isObject(value)) return out;
  for (const [key, v] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    if (isObject(v) && key !== 'prompts' && Object.keys(v).length > 0) for (const [p, leaf] of flatten(v, path)) out.set(p, leaf);
    else out.set(path, v);
  }
  return out;
}

const MINIMAL_ROUND = {
  generator: { base: 'g' },
  judge: { detector: 'd', clip: 'c' },
  prompts: { file: 'train.txt' },
  evaluation: { prompts: { file: 'eval.txt' } },
};

/** A field's default as the README writes it: the JSON value in backticks, or "required". */
function expectedDefault(path: string, value: Json, required: ReadonlySet<string>): string {
  return required.has(path) ? 'required' : `\`${JSON.stringify(value)}\``;
}

function fieldTable(value: Json, required: ReadonlySet<string>, skip: (path: string) => boolean) {
  return [...flatten(value)].filter(([path]) => !skip(path)).map(([path, v]) => [path, expectedDefault(path, v, required)] as const);
}

describe('README "Configuration"', () => {
  it('lists every round input field with its default, and nothing else', () => {
    const checked = validateRoundInput(MINIMAL_ROUND);
    if (!checked.ok) throw new Error('the minimal round input should be valid');
    const required = new Set(flatten(MINIMAL_ROUND).keys());
    const expected = fieldTable(checked.value as unknown as Json, required, () => false);
    const table = rows(section('### Round input'));
    expect([...table.keys()].sort()).toEqual(expected.map(([path]) => path).sort());
    for (const [path, defaultText] of expected) expect(table.get(path)?.[1], path).toBe(defaultText);
  });

  it('lists every campaign input field with its default, and nothing else', () => {
    const checked = validateCampaignInput({ round: MINIMAL_ROUND });
    if (!checked.ok) throw new Error('the minimal campaign input should be valid');
    // The first round is one field here: its own fields are the table above.
    const expected = [['round', 'required'] as const, ...fieldTable(checked.value as unknown as Json, new Set(), (path) => path.startsWith('round.'))];
    const table = rows(section('### Campaign input'));
    expect([...table.keys()].sort()).toEqual(expected.map(([path]) => path).sort());
    for (const [path, defaultText] of expected) expect(table.get(path)?.[1], path).toBe(defaultText);
  });

  it('lists every environment variable the workers and the command line read, as config/environment.ts does', () => {
    const table = rows(section('### Environment variables'));
    expect([...table.keys()].sort()).toEqual(Object.keys(ENVIRONMENT).sort());
    for (const [name, variable] of Object.entries(ENVIRONMENT)) {
      const defaultText = variable.default === null ? '—' : `\`${variable.default}\``;
      expect(table.get(name), name).toEqual([defaultText, variable.readBy.join(', '), variable.meaning]);
    }
  });
});

describe('README "Deploying with GPU workers"', () => {
  it('names the task queues the workers poll', () => {
    const text = section('## Deploying with GPU workers');
    for (const queue of Object.values(TASK_QUEUES)) expect(text).toContain(`\`${queue}\``);
  });
});
