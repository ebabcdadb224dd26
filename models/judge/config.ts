import { parseDevice, type Device } from '../onnx.js';

/**
 * Judge configuration and its validation. Every error names the offending field, because the
 * configuration comes from users' files and workflow inputs.
 */

export interface Weights {
  readonly detection: number;
  readonly checklist: number;
  readonly similarity: number;
  readonly clip: number;
  readonly count: number;
}

export interface JudgeConfig {
  /** Model folders in the transformers.js layout. The detector is required: the selection rule needs it. */
  readonly detector: string;
  readonly captioner: string | null;
  readonly clip: string | null;
  /** Detection confidence an image needs to count as showing the class (the paper: 0.5). */
  readonly threshold: number;
  /** Boxes overlapping more than this are one instance. */
  readonly iouThreshold: number;
  /** Images per model call. */
  readonly batchSize: number;
  readonly weights: Weights;
  /** Other names of a class that count as naming it, irregular plurals included ("person": ["people"]). */
  readonly synonyms: Readonly<Record<string, readonly string[]>>;
  /** Attribute words (colours) a caption must repeat when the prompt uses them. */
  readonly attributes: readonly string[];
  readonly device: Device;
  /** Off by default: models load only from local folders unless this opts in to hub downloads. */
  readonly allowRemoteModels: boolean;
}

export const DEFAULT_WEIGHTS: Weights = { detection: 0.4, checklist: 0.3, similarity: 0.1, clip: 0.1, count: 0.1 };

export const DEFAULT_ATTRIBUTES: readonly string[] = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'pink', 'brown', 'black', 'white', 'gray', 'grey'];

const DEFAULTS = {
  captioner: null,
  clip: null,
  threshold: 0.5,
  iouThreshold: 0.5,
  batchSize: 8,
  weights: DEFAULT_WEIGHTS,
  synonyms: {},
  attributes: DEFAULT_ATTRIBUTES,
  device: 'cpu',
  allowRemoteModels: false,
} as const;

type Fields = Record<string, unknown>;

function fail(field: string, expected: string, got: unknown): never {
  throw new Error(`judge config: ${field} must be ${expected}, got ${JSON.stringify(got) ?? String(got)}`);
}

function record(value: unknown, field: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(field, 'an object', value);
  return value as Fields;
}

function folder(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') fail(field, 'a non-empty folder path', value);
  return value;
}

function unit(value: unknown, field: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) fail(field, 'a number in [0, 1]', value);
  return value;
}

function words(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) fail(field, 'an array of non-empty strings', value);
  return value.map((w: unknown, i) => {
    if (typeof w !== 'string' || w.trim() === '') fail(`${field}[${i}]`, 'a non-empty string', w);
    return w.trim().toLowerCase();
  });
}

function weights(value: unknown): Weights {
  const given = record(value, 'weights');
  const out: Record<keyof Weights, number> = { ...DEFAULT_WEIGHTS };
  for (const [key, w] of Object.entries(given)) {
    if (!(key in DEFAULT_WEIGHTS)) fail(`weights.${key}`, `one of ${Object.keys(DEFAULT_WEIGHTS).join(', ')}`, key);
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) fail(`weights.${key}`, 'a finite number >= 0', w);
    out[key as keyof Weights] = w;
  }
  if (Object.values(out).every((w) => w === 0)) fail('weights', 'not all zero', given);
  return out;
}

function device(value: unknown): Device {
  if (typeof value !== 'string') fail('device', '"cpu", "cuda" or "cuda:N"', value);
  try {
    parseDevice(value);
  } catch {
    fail('device', '"cpu", "cuda" or "cuda:N"', value);
  }
  return value as Device;
}

/** Fill defaults and check every field; unknown fields are errors so typos do not pass silently. */
export function validateJudgeConfig(input: unknown): JudgeConfig {
  const given = record(input, 'config');
  const known = new Set(['detector', ...Object.keys(DEFAULTS)]);
  for (const key of Object.keys(given)) if (!known.has(key)) fail(key, 'a known field', key);
  const get = (key: keyof typeof DEFAULTS): unknown => (given[key] === undefined ? DEFAULTS[key] : given[key]);

  const batchSize = get('batchSize');
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < 1) fail('batchSize', 'an integer >= 1', batchSize);
  const remote = get('allowRemoteModels');
  if (typeof remote !== 'boolean') fail('allowRemoteModels', 'a boolean', remote);

  const synonyms: Record<string, string[]> = {};
  for (const [cls, list] of Object.entries(record(get('synonyms'), 'synonyms'))) {
    synonyms[cls.toLowerCase()] = words(list, `synonyms.${cls}`);
  }
  const optionalFolder = (key: 'captioner' | 'clip'): string | null => (get(key) === null ? null : folder(get(key), key));

  return {
    detector: folder(given['detector'], 'detector'),
    captioner: optionalFolder('captioner'),
    clip: optionalFolder('clip'),
    threshold: unit(get('threshold'), 'threshold'),
    iouThreshold: unit(get('iouThreshold'), 'iouThreshold'),
    batchSize,
    weights: given['weights'] === undefined ? DEFAULT_WEIGHTS : weights(given['weights']),
    synonyms,
    attributes: words(get('attributes'), 'attributes'),
    device: device(get('device')),
    allowRemoteModels: remote,
  };
}
