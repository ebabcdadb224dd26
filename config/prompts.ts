/**
 * Prompts: each carries the object class it asks for. A round names them inline or as a file of
 * `class; prompt` lines on the workers. Pure: the workflow validates inline prompts with it and
 * the activities parse files with it.
 */
import { custom, RESERVED_KEYS, show, type FieldError, type Validation } from './schema.js';

/** One training or evaluation prompt and the object class it asks for. */
export interface PromptLine {
  readonly className: string;
  readonly text: string;
}

/** Inline prompts, or a file of `class; prompt` lines (a path on the worker machines). */
export type PromptSource = readonly PromptLine[] | { readonly file: string };

/** Why a class name cannot be used, or null: class names become keys of per-class tables. */
function classNameProblem(className: string): string | null {
  return RESERVED_KEYS.includes(className) ? `a class name other than ${RESERVED_KEYS.join(', ')}` : null;
}

/** Problems listed for a prompt file, at most; the rest are counted. A failure stays small whatever the file. */
const MAX_LINE_ERRORS = 10;

/**
 * Parses a prompt file's text: one `class; prompt` per line; blank lines and `#` comments are
 * skipped. A bad line is named by its number with what is wrong in our own words, never its
 * text: the file may not be a prompt file at all, and errors end up in the workflow history.
 */
export function parsePromptLines(text: string, source: string): Validation<PromptLine[]> {
  const errors: FieldError[] = [];
  const lines: PromptLine[] = [];
  let bad = 0;
  text.split(/\r?\n/).forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const split = trimmed.indexOf(';');
    const className = split < 0 ? '' : trimmed.slice(0, split).trim();
    const prompt = split < 0 ? '' : trimmed.slice(split + 1).trim();
    const problem =
      split < 0
        ? 'a line without ";"'
        : className === ''
          ? 'no class before ";"'
          : prompt === ''
            ? 'no prompt after ";"'
            : classNameProblem(className) === null
              ? null
              : 'a reserved class name';
    if (problem === null) {
      lines.push({ className, text: prompt });
      return;
    }
    bad += 1;
    if (bad <= MAX_LINE_ERRORS)
      errors.push({
        field: `${source}:${i + 1}`,
        expected: 'a line `class; prompt` (a class name other than __proto__, constructor, prototype)',
        got: problem,
      });
  });
  if (bad > MAX_LINE_ERRORS) errors.push({ field: source, expected: 'no more bad lines', got: `${bad - MAX_LINE_ERRORS} more` });
  if (errors.length === 0 && lines.length === 0) errors.push({ field: source, expected: 'at least one `class; prompt` line', got: 'no prompts' });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: lines };
}

const INLINE = '{"className": non-empty string, "text": non-empty string}';
const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> => typeof value === 'object' && value !== null && !Array.isArray(value);
const nonEmpty = (value: unknown): value is string => typeof value === 'string' && value.trim() !== '';

function inlinePrompt(item: unknown, at: string, errors: FieldError[]): PromptLine {
  if (!isRecord(item) || !nonEmpty(item['className']) || !nonEmpty(item['text']) || Object.keys(item).some((k) => k !== 'className' && k !== 'text')) {
    errors.push({ field: at, expected: INLINE, got: show(item) });
    return { className: '', text: '' };
  }
  const className = item['className'].trim();
  const problem = classNameProblem(className);
  if (problem !== null) errors.push({ field: `${at}.className`, expected: problem, got: show(className) });
  return { className, text: item['text'].trim() };
}

/** A required prompt source: a non-empty list of inline prompts, or `{"file": path}`. */
export function promptSource(meaning: string) {
  return custom<PromptSource>({
    doc: { type: 'prompt source', required: true, meaning },
    read(value, at, errors) {
      if (Array.isArray(value)) {
        if (value.length === 0) errors.push({ field: at, expected: 'at least one prompt', got: show(value) });
        return value.map((item: unknown, i) => inlinePrompt(item, `${at}.${i}`, errors));
      }
      if (isRecord(value) && nonEmpty(value['file']) && Object.keys(value).length === 1) return { file: value['file'] };
      errors.push({ field: at, expected: `a list of ${INLINE} or {"file": path of \`class; prompt\` lines}`, got: show(value) });
      return [];
    },
    jsonSchema: () => ({
      description: meaning,
      oneOf: [
        {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            properties: { className: { type: 'string', pattern: '\\S' }, text: { type: 'string', pattern: '\\S' } },
            required: ['className', 'text'],
            additionalProperties: false,
          },
        },
        { type: 'object', properties: { file: { type: 'string', pattern: '\\S' } }, required: ['file'], additionalProperties: false },
      ],
    }),
  });
}
