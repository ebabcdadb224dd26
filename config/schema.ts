/**
 * A small declarative schema. Each configuration (round, campaign, judge, scheduler config,
 * environment) is one tree of field schemas, and everything about it reads that tree:
 * validation (every problem at once, each naming its field and what it must be), defaults,
 * the README's configuration tables and the JSON Schema users validate Web UI input against.
 *
 * Pure and free of Node imports: workflow code (a deterministic sandbox) validates with it,
 * and so does the model runtime, which is why it sits at the bottom of the layers.
 */

export interface FieldError {
  /** A JSON path such as `sampling.steps`, or `(input)` for the whole value. */
  readonly field: string;
  readonly expected: string;
  readonly got: string;
}

export type Validation<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: readonly FieldError[] };

export type JsonSchema = Readonly<Record<string, unknown>>;

/** A field as people read it: the README's type, default and meaning. */
export interface FieldDoc {
  readonly type: string;
  /** False when the field has a default (which may be null). */
  readonly required: boolean;
  readonly default?: unknown;
  readonly meaning: string;
}

export interface Schema<T> {
  /**
   * Reads `value` (undefined when the field is absent) found at `at`; a problem goes to
   * `errors` and a usable placeholder comes back, so that one pass finds every problem.
   */
  read(value: unknown, at: string, errors: FieldError[]): T;
  readonly doc: FieldDoc;
  /** An object's fields, which the README's tables walk into. */
  readonly fields?: Readonly<Record<string, Schema<unknown>>>;
  jsonSchema(): JsonSchema;
}

/** What every field may say about itself; a field without `default` is required. */
export interface FieldOptions<T> {
  readonly meaning: string;
  readonly default?: T;
  /** The README's type column, where the generated one says too little ("path", say). */
  readonly type?: string;
}

/** Keys that would reach an object's prototype: never accepted as user-chosen names. */
export const RESERVED_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

/** A value for an error message: JSON, cut short, never the whole of a large input. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function describeErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.field}: expected ${e.expected}, got ${e.got}`).join('; ');
}

/**
 * The most a workflow input may weigh as JSON. Temporal carries at most 2 MB per payload and
 * warns past 256 KB; an input this size still leaves room, and past it the likely cause is
 * inline prompts that belong in a file.
 */
export const MAX_INPUT_BYTES = 1_000_000;

/** A workflow input's own problems, its size first: a huge input is refused before it is read field by field. */
export function validateInput<T>(schema: Schema<T>, value: unknown): Validation<T> {
  const bytes = new TextEncoder().encode(JSON.stringify(value) ?? '').length;
  if (bytes > MAX_INPUT_BYTES) {
    return {
      ok: false,
      errors: [
        {
          field: '(input)',
          expected: `at most ${MAX_INPUT_BYTES / 1e6} MB as JSON (put long prompt lists in a prompt file)`,
          got: `${(bytes / 1e6).toFixed(1)} MB`,
        },
      ],
    };
  }
  return validate(schema, value);
}

/** Reads a whole value against a schema: the value with defaults filled, or every problem. */
export function validate<T>(schema: Schema<T>, value: unknown): Validation<T> {
  const errors: FieldError[] = [];
  const read = schema.read(value, '', errors);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: read };
}

const join = (at: string, key: string) => (at === '' ? key : `${at}.${key}`);
const where = (at: string) => (at === '' ? '(input)' : at);
const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> => typeof value === 'object' && value !== null && !Array.isArray(value);
const quoted = (choices: readonly (string | number)[]) => choices.map((c) => JSON.stringify(c)).join(', ');

interface LeafSpec<T> extends FieldOptions<T> {
  readonly expected: string;
  readonly typeLabel: string;
  readonly accepts: (value: unknown) => boolean;
  readonly placeholder: T;
  readonly json: JsonSchema;
  readonly normalise?: (value: unknown) => T;
}

function doc<T>(options: FieldOptions<T>, typeLabel: string): FieldDoc {
  const required = !('default' in options);
  return { type: options.type ?? typeLabel, required, ...(required ? {} : { default: options.default }), meaning: options.meaning };
}

function withDoc(json: JsonSchema, options: FieldOptions<unknown>): JsonSchema {
  return { ...json, description: options.meaning, ...('default' in options ? { default: options.default } : {}) };
}

function leaf<T>(spec: LeafSpec<T>): Schema<T> {
  return {
    doc: doc(spec, spec.typeLabel),
    read(value, at, errors) {
      if (value === undefined && 'default' in spec) return spec.default as T;
      if (spec.accepts(value)) return spec.normalise ? spec.normalise(value) : (value as T);
      errors.push({ field: where(at), expected: spec.expected, got: show(value) });
      return spec.placeholder;
    },
    jsonSchema: () => withDoc(spec.json, spec),
  };
}

export function integer(options: FieldOptions<number> & { readonly min: number; readonly max?: number }): Schema<number> {
  const { min, max } = options;
  return leaf({
    ...options,
    expected: max === undefined ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`,
    typeLabel: max === undefined ? `integer ≥ ${min}` : `integer ${min}–${max}`,
    accepts: (v) => typeof v === 'number' && Number.isInteger(v) && v >= min && (max === undefined || v <= max),
    placeholder: options.default ?? min,
    json: { type: 'integer', minimum: min, ...(max === undefined ? {} : { maximum: max }) },
  });
}

/** A finite number in [min, max]; `exclusiveMin` and `exclusiveMax` open either end. */
export function number(
  options: FieldOptions<number> & {
    readonly min: number;
    readonly max: number;
    readonly exclusiveMin?: boolean;
    readonly exclusiveMax?: boolean;
    readonly expected?: string;
  },
): Schema<number> {
  const { min, max, exclusiveMin = false, exclusiveMax = false } = options;
  const range = `${exclusiveMin ? '(' : '['}${min}, ${max}${exclusiveMax ? ')' : ']'}`;
  return leaf({
    ...options,
    expected: options.expected ?? `a number in ${range}`,
    typeLabel: `number in ${range}`,
    accepts: (v) => typeof v === 'number' && Number.isFinite(v) && (exclusiveMin ? v > min : v >= min) && (exclusiveMax ? v < max : v <= max),
    placeholder: options.default ?? min,
    json: {
      type: 'number',
      ...(exclusiveMin ? { exclusiveMinimum: min } : { minimum: min }),
      ...(Number.isFinite(max) ? (exclusiveMax ? { exclusiveMaximum: max } : { maximum: max }) : {}),
    },
  });
}

/** A string with something besides spaces in it (a path, a name). */
export function string(options: FieldOptions<string> & { readonly expected?: string }): Schema<string> {
  return leaf({
    ...options,
    expected: options.expected ?? 'a non-empty string',
    typeLabel: 'string',
    accepts: (v) => typeof v === 'string' && v.trim() !== '',
    placeholder: '',
    json: { type: 'string', pattern: '\\S' },
  });
}

/** A string the pattern matches whole (a name that becomes a key or an id, say). */
export function matching(pattern: RegExp, options: FieldOptions<string> & { readonly expected: string }): Schema<string> {
  return leaf({
    ...options,
    typeLabel: 'string',
    accepts: (v) => typeof v === 'string' && pattern.test(v),
    placeholder: '',
    json: { type: 'string', pattern: pattern.source },
  });
}

/** Any string, the empty one included. */
export function text(options: FieldOptions<string>): Schema<string> {
  return leaf({ ...options, expected: 'a string', typeLabel: 'string', accepts: (v) => typeof v === 'string', placeholder: '', json: { type: 'string' } });
}

export function boolean(options: FieldOptions<boolean>): Schema<boolean> {
  return leaf({
    ...options,
    expected: 'true or false',
    typeLabel: 'boolean',
    accepts: (v) => typeof v === 'boolean',
    placeholder: false,
    json: { type: 'boolean' },
  });
}

export function oneOf<const C extends string | number>(choices: readonly C[], options: FieldOptions<C>): Schema<C> {
  return leaf<C>({
    ...options,
    expected: `one of ${quoted(choices)}`,
    typeLabel: choices.map((c) => `\`${c}\``).join(choices.length === 2 ? ' or ' : ', '),
    accepts: (v) => (choices as readonly unknown[]).includes(v),
    placeholder: options.default ?? choices[0]!,
    json: { enum: [...choices] },
  });
}

/** The schema's value, or null; absent means null unless another default is given. */
export function nullable<T>(schema: Schema<T>, options: Partial<FieldOptions<T | null>> = {}): Schema<T | null> {
  const fallback = 'default' in options ? options.default : null;
  const meaning = options.meaning ?? schema.doc.meaning;
  return {
    doc: { type: options.type ?? `${schema.doc.type} or null`, required: false, default: fallback, meaning },
    read(value, at, errors) {
      if (value === undefined) return fallback ?? null;
      if (value === null) return null;
      const before = errors.length;
      const read = schema.read(value, at, errors);
      // Only a complaint about the value as a whole could be answered with null; a nested field's could not.
      for (let i = before; i < errors.length; i++)
        if (errors[i]!.field === where(at)) errors[i] = { ...errors[i]!, expected: `null or ${errors[i]!.expected}` };
      return read;
    },
    jsonSchema: () => ({ anyOf: [schema.jsonSchema(), { type: 'null' }], description: meaning, default: fallback }),
  };
}

/** A list of items; `minItems` (default 0) items at least. */
export function list<T>(item: Schema<T>, options: FieldOptions<readonly T[]> & { readonly minItems?: number }): Schema<readonly T[]> {
  const minItems = options.minItems ?? 0;
  const expected = minItems > 0 ? `a list of at least ${minItems} item(s)` : 'a list';
  return {
    doc: doc(options, `list of ${item.doc.type}`),
    read(value, at, errors) {
      if (value === undefined && 'default' in options) return options.default!;
      if (!Array.isArray(value) || value.length < minItems) {
        errors.push({ field: where(at), expected, got: show(value) });
        return [];
      }
      return value.map((entry: unknown, i) => item.read(entry, join(at, String(i)), errors));
    },
    jsonSchema: () => withDoc({ type: 'array', items: item.jsonSchema(), ...(minItems > 0 ? { minItems } : {}) }, options),
  };
}

/**
 * An object keyed by user-chosen names (class names, say). The result has no prototype, so a
 * name such as `toString` is a plain key, and the names that would reach a prototype are refused.
 */
export function record<T>(
  value: Schema<T>,
  options: FieldOptions<Readonly<Record<string, T>>> & { readonly keyMeaning: string; readonly key?: (name: string) => string },
): Schema<Readonly<Record<string, T>>> {
  const expected = `an object of ${options.keyMeaning} -> ${value.doc.type}`;
  return {
    doc: doc(options, `object: ${options.keyMeaning} → ${value.doc.type}`),
    read(input, at, errors) {
      const out: Record<string, T> = Object.create(null) as Record<string, T>;
      if (input === undefined && 'default' in options) input = options.default;
      if (!isRecord(input)) {
        errors.push({ field: where(at), expected, got: show(input) });
        return out;
      }
      for (const [name, entry] of Object.entries(input)) {
        if (RESERVED_KEYS.includes(name)) {
          errors.push({ field: join(at, name), expected: `a ${options.keyMeaning} other than ${RESERVED_KEYS.join(', ')}`, got: show(name) });
          continue;
        }
        out[options.key ? options.key(name) : name] = value.read(entry, join(at, name), errors);
      }
      return out;
    },
    jsonSchema: () => withDoc({ type: 'object', additionalProperties: value.jsonSchema() }, options),
  };
}

export interface ObjectOptions {
  readonly meaning: string;
  /** Absent, the object reads as `{}`, so its fields take their defaults; else it must be given. */
  readonly required?: boolean;
  /** Unknown fields are errors (a typo must not fall back to a default), unless a foreign format has more than we read. */
  readonly unknownFields?: 'error' | 'ignore';
  /** The key a field is read from, when the input spells it otherwise (diffusers' snake_case). */
  readonly keyOf?: (field: string) => string;
}

export type Fields<T> = { readonly [K in keyof T]-?: Schema<T[K]> };

export function object<T>(fields: Fields<T>, options: ObjectOptions): Schema<T> {
  const names = Object.keys(fields) as (keyof T & string)[];
  const keyOf = options.keyOf ?? ((field: string) => field);
  const known = names.map(keyOf);
  const requiredNames = names.filter((name) => fields[name].doc.required).map(keyOf);
  const expected = requiredNames.length > 0 ? `an object with at least ${quoted(requiredNames)}` : 'an object';
  function read(value: unknown, at: string, errors: FieldError[]): T {
    if (value === undefined && options.required !== true) value = {};
    if (!isRecord(value)) {
      // One error for the whole object; its fields' own complaints would only repeat it.
      errors.push({ field: where(at), expected: value === undefined ? expected : 'an object', got: show(value) });
      return read({}, at, []);
    }
    if (options.unknownFields !== 'ignore') {
      for (const key of Object.keys(value)) {
        if (!known.includes(key)) errors.push({ field: join(at, key), expected: `no such field (known: ${known.join(', ')})`, got: show(value[key]) });
      }
    }
    const out = {} as Record<string, unknown>;
    for (const name of names) {
      const key = keyOf(name);
      out[name] = fields[name].read(Object.hasOwn(value, key) ? value[key] : undefined, join(at, key), errors);
    }
    return out as T;
  }
  return {
    doc: { type: 'object', required: options.required === true, meaning: options.meaning },
    fields: fields as Readonly<Record<string, Schema<unknown>>>,
    read,
    jsonSchema: () => ({
      type: 'object',
      description: options.meaning,
      properties: Object.fromEntries(names.map((name) => [keyOf(name), fields[name].jsonSchema()])),
      ...(requiredNames.length > 0 ? { required: requiredNames } : {}),
      ...(options.unknownFields === 'ignore' ? {} : { additionalProperties: false }),
    }),
  };
}

/**
 * The schema with one more rule over the whole value: `check` says what was expected when the
 * value breaks it (null when it holds), and of which field (a path below this one) when it is
 * about one. It runs only on a value that passed the schema itself, unless `evenWithErrors`
 * says the rule reads only fields whose placeholders it can judge (and the value as a whole was
 * not refused).
 */
export function refine<T>(
  schema: Schema<T>,
  check: (value: T) => { readonly field?: string; readonly expected: string } | null,
  options: { readonly evenWithErrors?: boolean } = {},
): Schema<T> {
  return {
    ...schema,
    read(value, at, errors) {
      const before = errors.length;
      const read = schema.read(value, at, errors);
      const wholeRefused = errors.slice(before).some((e) => e.field === where(at));
      const broken = errors.length === before || (options.evenWithErrors === true && !wholeRefused) ? check(read) : null;
      if (broken !== null) {
        const field = broken.field === undefined ? at : join(at, broken.field);
        const got = broken.field === undefined ? value : broken.field.split('.').reduce<unknown>((v, key) => (isRecord(v) ? v[key] : undefined), read);
        errors.push({ field: where(field), expected: broken.expected, got: show(got) });
      }
      return read;
    },
  };
}

/** A field with its own reading rule, for shapes the builders above do not cover. */
export function custom<T>(spec: { readonly doc: FieldDoc; readonly read: Schema<T>['read']; readonly jsonSchema: () => JsonSchema }): Schema<T> {
  return spec;
}

/** One README row per leaf field, objects walked into: `path`, type, default (JSON, or "required"), meaning. */
export interface DocRow {
  readonly field: string;
  readonly type: string;
  readonly default: string;
  readonly meaning: string;
}

export function docRows(schema: Schema<unknown>, prefix = '', collapse: (path: string) => boolean = () => false): DocRow[] {
  if (schema.fields === undefined || (prefix !== '' && collapse(prefix))) {
    const { doc: d } = schema;
    return [{ field: prefix, type: d.type, default: d.required ? 'required' : `\`${JSON.stringify(d.default)}\``, meaning: d.meaning }];
  }
  return Object.entries(schema.fields).flatMap(([key, field]) => docRows(field, prefix === '' ? key : `${prefix}.${key}`, collapse));
}

/** A Markdown table, the way the README writes them. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [header, header.map(() => '---'), ...rows].map((cells) => `|${cells.map((c) => (c === '---' ? c : ` ${c} `)).join('|')}|`).join('\n');
}

/** The README's table of a configuration's fields. */
export function fieldTable(rows: readonly DocRow[]): string {
  return markdownTable(
    ['field', 'type', 'default', 'meaning'],
    rows.map((r) => [`\`${r.field}\``, r.type, r.default, r.meaning]),
  );
}

/** A JSON Schema document (draft 2020-12) for a configuration. */
export function jsonSchemaDocument(schema: Schema<unknown>, title: string): JsonSchema {
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', title, ...schema.jsonSchema() };
}
