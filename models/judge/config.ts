/**
 * The judge's configuration: its fields, their defaults and rules, in one schema. A round's
 * `judge` settings are these same fields (config/round.ts composes them), so a setting the
 * judge would refuse is refused when the round starts, not after hours of sampling.
 */
import {
  boolean,
  custom,
  describeErrors,
  list,
  nullable,
  number,
  integer,
  object,
  record,
  refine,
  show,
  string,
  validate,
  type Schema,
} from '../../config/schema.js';
import { ModelError } from '../errors.js';
import type { Device } from '../onnx.js';

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
  /** CPU threads per model graph; null: onnxruntime's choice (every core). */
  readonly threads: number | null;
  /** Off by default: models load only from local folders unless this opts in to hub downloads. */
  readonly allowRemoteModels: boolean;
}

/** A judge configuration the judge's rules refuse. */
export class JudgeConfigError extends ModelError {
  override name = 'JudgeConfigError';
}

export const DEFAULT_WEIGHTS: Weights = { detection: 0.4, checklist: 0.3, similarity: 0.1, clip: 0.1, count: 0.1 };

export const DEFAULT_ATTRIBUTES: readonly string[] = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'pink', 'brown', 'black', 'white', 'gray', 'grey'];

const weight = (part: keyof Weights, meaning: string) =>
  number({ min: 0, max: Number.MAX_VALUE, default: DEFAULT_WEIGHTS[part], meaning, expected: 'a finite number >= 0' });

/** The combined score's weights: any part may be given, the others keep their defaults; not all zero. */
export const WEIGHTS: Schema<Weights> = refine(
  object<Weights>(
    {
      detection: weight('detection', 'detection confidence'),
      checklist: weight('checklist', 'caption checklist tier'),
      similarity: weight('similarity', 'caption-prompt similarity'),
      clip: weight('clip', 'CLIP image-prompt score'),
      count: weight('count', 'instance count matches the prompt'),
    },
    { meaning: 'weights of the combined score' },
  ),
  (w) => (Object.values(w).every((x) => x === 0) ? { expected: 'weights not all zero' } : null),
);

/** A word as captions are compared: trimmed, lower case. */
export const word = custom<string>({
  doc: { type: 'word', required: true, meaning: 'a word' },
  read(value, at, errors) {
    if (typeof value === 'string' && value.trim() !== '') return value.trim().toLowerCase();
    errors.push({ field: at, expected: 'a non-empty string', got: show(value) });
    return '';
  },
  jsonSchema: () => ({ type: 'string', pattern: '\\S' }),
});

/** The judge settings a round chooses; `clip` is what rounds must name (their evaluation scores with it). */
export const JUDGE_SETTINGS = {
  detector: string({ meaning: 'object detector (OWL-ViT / OWLv2 or DETR, transformers.js layout)', type: 'path' }),
  captioner: nullable(string({ meaning: 'image captioner for the caption checklist and similarity' }), { type: 'path or null' }),
  threshold: number({ min: 0, max: 1, default: 0.5, meaning: 'detection confidence at which an image shows the class' }),
  iouThreshold: number({ min: 0, max: 1, default: 0.5, meaning: 'box overlap at which two detections are one instance (counting)' }),
  batchSize: integer({ min: 1, max: 1024, default: 8, meaning: 'images per judge batch' }),
  synonyms: record(list(word, { meaning: 'other words for the class' }), {
    default: {},
    keyMeaning: 'class name',
    key: (name) => name.toLowerCase(),
    type: 'object: class → list of words',
    meaning: 'other words that name a class in captions',
  }),
  weights: nullable(WEIGHTS, {
    type: 'object: part → number ≥ 0, or null',
    meaning: 'weights of `detection`, `checklist`, `similarity`, `clip`, `count` in the combined score (null: 0.4, 0.3, 0.1, 0.1, 0.1)',
  }),
} as const;

const device = custom<Device>({
  doc: { type: 'device', required: false, default: 'cpu', meaning: '`cpu`, `cuda` or `cuda:N`' },
  read(value, at, errors) {
    if (value === undefined) return 'cpu';
    if (typeof value === 'string' && /^(cpu|cuda(:\d+)?)$/.test(value)) return value as Device;
    errors.push({ field: at, expected: '"cpu", "cuda" or "cuda:N"', got: show(value) });
    return 'cpu';
  },
  jsonSchema: () => ({ type: 'string', pattern: '^(cpu|cuda(:\\d+)?)$', default: 'cpu' }),
});

const JUDGE_CONFIG = object<JudgeConfig>(
  {
    ...JUDGE_SETTINGS,
    clip: nullable(string({ meaning: 'CLIP model' }), { type: 'path or null' }),
    weights: WEIGHTS,
    attributes: list(word, { default: DEFAULT_ATTRIBUTES, meaning: 'attribute words a caption must repeat' }),
    device,
    threads: nullable(integer({ min: 1, max: 1024, meaning: 'CPU threads per model graph' }), { type: 'integer or null' }),
    allowRemoteModels: boolean({ default: false, meaning: 'let model folders be hub ids' }),
  },
  { meaning: 'the judge configuration', required: true },
);

/** GenEval's colour vocabulary: the colours its colour task asks for and its CLIP picks among. */
export const GENEVAL_COLOURS: readonly string[] = ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown', 'black', 'white'];

/**
 * The referee: a second judge that only grades the evaluation, never picks training images, so
 * a generator that learns to please the curation judge without drawing the class shows. Its
 * checks follow GenEval: object presence at a low confidence, counting at a high one, colour by
 * CLIP zero-shot on the object's crop.
 */
export interface RefereeSettings {
  /** A detector folder of any family in the registry; GenEval's is a closed-vocabulary one. */
  readonly detector: string;
  /** A CLIP folder for the colour and background zero-shot checks. */
  readonly clip: string;
  /** Confidence at which the referee finds the prompt's class in an image (GenEval: 0.3). */
  readonly presenceThreshold: number;
  /** Confidence at which a detection counts as an instance (GenEval: 0.9). */
  readonly countThreshold: number;
  readonly iouThreshold: number;
  readonly batchSize: number;
  /** Other names of a class, for the prompt's parsing and a closed vocabulary's labels. */
  readonly synonyms: Readonly<Record<string, readonly string[]>>;
  /** The colours a prompt may ask for, and CLIP picks among. */
  readonly colours: readonly string[];
  /** The backgrounds a prompt may name ("on a white background"), and CLIP picks among; empty: no background check. */
  readonly backgrounds: readonly string[];
}

export interface RefereeConfig extends RefereeSettings {
  readonly device: Device;
  readonly threads: number | null;
}

/** The referee's settings, as a round's `evaluation.referee` holds them. */
export const REFEREE_SETTINGS = {
  detector: string({
    type: 'path',
    meaning: "the referee's object detector, any family the judge supports (GenEval uses a closed-vocabulary one: DETR, YOLOS, ...); never used to curate",
  }),
  clip: string({ type: 'path', meaning: "CLIP model for the colour (on the object's crop) and background (whole image) zero-shot checks" }),
  presenceThreshold: number({ min: 0, max: 1, default: 0.3, meaning: "detection confidence at which the referee finds the prompt's class (GenEval: 0.3)" }),
  countThreshold: number({ min: 0, max: 1, default: 0.9, meaning: 'detection confidence at which a detection counts as an instance (GenEval: 0.9)' }),
  iouThreshold: number({ min: 0, max: 1, default: 0.5, meaning: 'box overlap at which two detections are one instance (counting)' }),
  batchSize: integer({ min: 1, max: 1024, default: 8, meaning: 'images per referee batch' }),
  synonyms: record(list(word, { meaning: 'other words for the class' }), {
    default: {},
    keyMeaning: 'class name',
    key: (name) => name.toLowerCase(),
    type: 'object: class → list of words',
    meaning: "other words that name a class: the prompt's plural or a closed-vocabulary detector's label",
  }),
  colours: list(word, {
    default: GENEVAL_COLOURS,
    meaning: 'colour words a prompt may ask for; the colour check\'s CLIP picks among them ("a photo of a {colour} {class}"). Default: GenEval\'s ten',
  }),
  backgrounds: list(word, {
    default: [],
    meaning: 'background words a prompt may name ("on a white background"); CLIP picks among them on the whole image. Empty: no background check',
  }),
} as const;

const REFEREE_CONFIG = object<RefereeConfig>(
  {
    ...REFEREE_SETTINGS,
    device,
    threads: nullable(integer({ min: 1, max: 1024, meaning: 'CPU threads per model graph' }), { type: 'integer or null' }),
  },
  { meaning: 'the referee configuration', required: true },
);

/** Fills defaults and checks every field of the referee's configuration, naming fields as `evaluation.referee` does. */
export function validateRefereeConfig(input: unknown): RefereeConfig {
  const checked = validate(REFEREE_CONFIG, input);
  if (!checked.ok) throw new JudgeConfigError(`evaluation.referee: ${describeErrors(checked.errors)}`);
  return checked.value;
}

/** Fills defaults and checks every field; unknown fields are errors so typos do not pass silently. */
export function validateJudgeConfig(input: unknown): JudgeConfig {
  const checked = validate(JUDGE_CONFIG, input === undefined ? {} : input);
  if (!checked.ok) throw new JudgeConfigError(`judge config: ${describeErrors(checked.errors)}`);
  return checked.value;
}
