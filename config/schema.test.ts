import { describe, expect, it } from 'vitest';

import { CAMPAIGN_SCHEMA } from './campaign.js';
import { ROUND_SCHEMA } from './round.js';
import { docRows, fieldTable, integer, jsonSchemaDocument, list, nullable, number, object, oneOf, record, refine, string, validate } from './schema.js';

const settings = object<{ name: string; size: number; mode: 'a' | 'b'; limit: number | null; tags: readonly string[] }>(
  {
    name: string({ meaning: 'a name' }),
    size: integer({ min: 1, max: 10, default: 3, meaning: 'a size' }),
    mode: oneOf(['a', 'b'], { default: 'a', meaning: 'a mode' }),
    limit: nullable(number({ min: 0, max: 1, exclusiveMin: true, meaning: 'a limit' })),
    tags: list(string({ meaning: 'a tag' }), { default: [], meaning: 'tags' }),
  },
  { meaning: 'settings', required: true },
);

describe('the schema reader', () => {
  it('fills defaults and keeps what is given', () => {
    expect(validate(settings, { name: 'x' })).toEqual({ ok: true, value: { name: 'x', size: 3, mode: 'a', limit: null, tags: [] } });
    expect(validate(settings, { name: 'x', size: 10, mode: 'b', limit: 1, tags: ['t'] })).toMatchObject({ ok: true, value: { size: 10, limit: 1 } });
  });

  it('reports every problem at once, each naming its field, what it must be and what it got', () => {
    const result = validate(settings, { name: ' ', size: 0, mode: 'c', limit: 0, tags: [''], extra: 1 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      { field: 'extra', expected: 'no such field (known: name, size, mode, limit, tags)', got: '1' },
      { field: 'name', expected: 'a non-empty string', got: '" "' },
      { field: 'size', expected: 'an integer in [1, 10]', got: '0' },
      { field: 'mode', expected: 'one of "a", "b"', got: '"c"' },
      { field: 'limit', expected: 'null or a number in (0, 1]', got: '0' },
      { field: 'tags.0', expected: 'a non-empty string', got: '""' },
    ]);
  });

  it('refuses null where a value is required, NaN and infinities, and names a missing object once', () => {
    const result = validate(settings, { name: null, size: Number.NaN, limit: Infinity });
    expect(result.ok ? [] : result.errors.map((e) => `${e.field}: ${e.got}`)).toEqual(['name: null', 'size: NaN', 'limit: Infinity']);
    expect(validate(settings, undefined)).toEqual({ ok: false, errors: [{ field: '(input)', expected: 'an object with at least "name"', got: 'nothing' }] });
    expect(validate(settings, [1])).toEqual({ ok: false, errors: [{ field: '(input)', expected: 'an object', got: '[1]' }] });
  });

  it('cuts long values short in messages', () => {
    const result = validate(settings, { name: 'x'.repeat(10_000), size: 'y'.repeat(10_000) });
    expect(result.ok ? '' : result.errors[0]!.got.length).toBeLessThanOrEqual(80);
  });

  it('keeps user-chosen names off prototypes', () => {
    const table = record(integer({ min: 0, meaning: 'count' }), { default: {}, keyMeaning: 'class name', meaning: 'counts' });
    const polluted = JSON.parse('{"__proto__": 1, "constructor": 2, "toString": 3}') as unknown;
    const result = validate(table, polluted);
    expect(result.ok ? [] : result.errors.map((e) => e.field)).toEqual(['__proto__', 'constructor']);
    const plain = validate(table, { toString: 3 });
    expect(plain.ok && Object.getPrototypeOf(plain.value)).toBeNull();
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    const unknownKey = validate(settings, JSON.parse('{"name": "x", "__proto__": {"size": 1}}') as unknown);
    expect(unknownKey.ok ? [] : unknownKey.errors.map((e) => e.field)).toEqual(['__proto__']);
  });

  it('applies a rule over the whole value only when the value passed its schema', () => {
    const pair = refine(list(integer({ min: 0, meaning: 'n' }), { meaning: 'pair' }), (v) => (v.length === 2 ? null : { expected: 'two numbers' }));
    expect(validate(pair, [1, 2]).ok).toBe(true);
    expect(validate(pair, [1])).toMatchObject({ ok: false, errors: [{ expected: 'two numbers' }] });
    expect(validate(pair, [-1])).toMatchObject({ ok: false, errors: [{ expected: 'an integer >= 0' }] });
  });
});

describe('what the schema documents', () => {
  it('gives the README one row per leaf field with its type, default and meaning', () => {
    const rows = docRows(settings);
    expect(rows.map((r) => [r.field, r.type, r.default])).toEqual([
      ['name', 'string', 'required'],
      ['size', 'integer 1–10', '`3`'],
      ['mode', '`a` or `b`', '`"a"`'],
      ['limit', 'number in (0, 1] or null', '`null`'],
      ['tags', 'list of string', '`[]`'],
    ]);
    expect(fieldTable(rows).split('\n')[2]).toBe('| `name` | string | required | a name |');
  });

  it('writes a JSON Schema with every field, its bounds and default, and no other fields', () => {
    const document = jsonSchemaDocument(ROUND_SCHEMA, 'round') as {
      properties: Record<string, { properties?: Record<string, Record<string, unknown>> }>;
      required: string[];
      additionalProperties: boolean;
    };
    expect(document.required).toEqual(['generator', 'judge', 'evaluation']);
    expect(document.additionalProperties).toBe(false);
    expect(document.properties['sampling']?.properties?.['steps']).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000, default: 20 });
    expect(document.properties['lora']?.properties?.['learningRate']).toMatchObject({ exclusiveMinimum: 0, maximum: 1 });
    // The JSON Schema and the reader agree on which fields exist.
    const leaves = docRows(ROUND_SCHEMA).map((r) => r.field);
    for (const field of leaves) {
      const [top, sub] = field.split('.');
      const node = document.properties[top!];
      expect(sub === undefined ? node : node?.properties?.[sub], field).toBeDefined();
    }
    expect(docRows(CAMPAIGN_SCHEMA, '', (path) => path === 'round')[0]).toMatchObject({ field: 'round', type: 'round input', default: 'required' });
  });
});
