/**
 * The README's configuration reference, generated from the schemas and tables the code reads:
 * `test/readme.test.ts` checks the README holds exactly these, and
 * `npx tsx scripts/readme-tables.ts` writes them into it.
 */
import { FAILURE_TYPES } from '../contract/failures.js';
import { CAMPAIGN_SCHEMA } from '../config/campaign.js';
import { ENVIRONMENT } from '../config/environment.js';
import { NIGHTLY_SCHEMA } from '../config/nightly.js';
import { REFEREE_SCHEMA, ROUND_SCHEMA } from '../config/round.js';
import { docRows, fieldTable, markdownTable } from '../config/schema.js';
import { LOG_FIELDS } from '../observability/logs.js';
import { METRICS, type MetricSpec } from '../observability/metrics.js';

/** Each table under the README heading it belongs to. */
export const REFERENCE_TABLES: Readonly<Record<string, () => string>> = {
  '### Round input': () => fieldTable(docRows(ROUND_SCHEMA)),
  // The first round is one field here: its own fields are the round table.
  // `evaluation.referee` is one row of the round table; its own fields are here.
  '### Referee': () => fieldTable(docRows(REFEREE_SCHEMA, 'evaluation.referee')),
  '### Campaign input': () => fieldTable(docRows(CAMPAIGN_SCHEMA, '', (path) => path === 'round')),
  // The night's round is one field here too.
  '### Nightly input': () => fieldTable(docRows(NIGHTLY_SCHEMA, '', (path) => path === 'round')),
  '### Environment variables': () =>
    markdownTable(
      ['variable', 'default', 'read by', 'meaning'],
      Object.entries(ENVIRONMENT).map(([name, v]) => [`\`${name}\``, v.default === null ? '—' : `\`${v.default}\``, v.readBy.join(', '), v.meaning]),
    ),
  '### Metrics': () =>
    markdownTable(
      ['metric', 'type', 'labels', 'meaning'],
      Object.values(METRICS as Readonly<Record<string, MetricSpec>>).map((m) => [
        `\`${m.name}\``,
        m.instrument,
        m.labels.map((label) => `\`${label}\``).join(', ') || '—',
        `${m.meaning} (${m.unit})`,
      ]),
    ),
  '### Logs': () =>
    markdownTable(
      ['field', 'meaning'],
      Object.entries(LOG_FIELDS).map(([field, meaning]) => [`\`${field}\``, meaning]),
    ),
  '### Failure types': () =>
    markdownTable(
      ['type', 'meaning'],
      Object.entries(FAILURE_TYPES).map(([type, meaning]) => [`\`${type}\``, meaning]),
    ),
};

/** The README with each reference table replaced by the generated one (the first table under its heading). */
export function withReferenceTables(readme: string): string {
  const lines = readme.split('\n');
  for (const [heading, generate] of Object.entries(REFERENCE_TABLES)) {
    const at = lines.indexOf(heading);
    if (at < 0) throw new Error(`README has no "${heading}" heading`);
    const start = lines.findIndex((line, i) => i > at && line.startsWith('|'));
    let end = start;
    while (end < lines.length && lines[end]!.startsWith('|')) end++;
    lines.splice(start, end - start, ...generate().split('\n'));
  }
  return lines.join('\n');
}
