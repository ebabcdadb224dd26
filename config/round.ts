/**
 * The input of a self-reward round and of a campaign: one schema for the workflow, the
 * command line and the Web UI's "Start Workflow" JSON. Pure and free of Node imports, because
 * workflow code (deterministic sandbox) validates with it too.
 *
 * `validateRoundInput` fills defaults and returns every problem at once, each naming the field
 * (a JSON path such as `sampling.steps`) and what it must be, so a user fixes a file in one go.
 */

import { SCHEDULER_CLASS_NAMES, type SchedulerClassName } from '../models/schedulers/names.js';

/** One training or evaluation prompt and the object class it asks for. */
export interface PromptLine {
  readonly className: string;
  readonly text: string;
}

/** Inline prompts, or a file of `class; prompt` lines (a path on the worker machines). */
export type PromptSource = readonly PromptLine[] | { readonly file: string };

export interface GeneratorRef {
  /** Stable Diffusion folder on the GPU workers: diffusers weights (for training) and the ONNX parts (for sampling). */
  readonly base: string;
  /** Artifact prefix holding `unet/model.onnx` of an earlier round: sampling uses it in place of the base UNet. */
  readonly tunedUnet: string | null;
}

export interface JudgeSettings {
  readonly detector: string;
  readonly captioner: string | null;
  /** Required: the evaluation's CLIP scores come from it. */
  readonly clip: string;
  /** Detection confidence at which an image shows the class (the paper: 0.5). */
  readonly threshold: number;
  readonly iouThreshold: number;
  readonly batchSize: number;
  /** Passed to the runtime's judge config as given (it validates them and names the field). */
  readonly synonyms: Readonly<Record<string, readonly string[]>>;
  readonly weights: Readonly<Record<string, number>> | null;
}

export type SelectionRule = 'paper' | 'combined';
export type LrScheduler = 'constant' | 'cosine';

export interface SelectionSettings {
  /** `paper`: top checklist tier, then highest detection; `combined`: highest combined score. */
  readonly rule: SelectionRule;
  /** With `combined`: an image below this combined score is never kept. */
  readonly minCombined: number;
  /** Images kept per prompt, best first; all must pass the rule. The paper keeps 1. */
  readonly perPrompt: number;
}

export interface SamplingSettings {
  readonly steps: number;
  readonly guidanceScale: number;
  /** 0 means the generator's own size (its UNet sample size times the VAE factor). */
  readonly width: number;
  readonly height: number;
  readonly negativePrompt: string;
  /** A scheduler class name (`DDIMScheduler`, ...) or null for the generator's own. */
  readonly scheduler: SchedulerClassName | null;
  /** Image k of training prompt i has seed `seed + i * samplesPerPrompt + k`. */
  readonly seed: number;
}

export interface LoraSettings {
  readonly rank: number;
  readonly learningRate: number;
  /** `constant`, or `cosine`: a half cosine from `learningRate` down to zero at the last step. */
  readonly lrScheduler: LrScheduler;
  readonly batchSize: number;
  /** Optimizer steps; null trains for `epochs`. */
  readonly maxSteps: number | null;
  readonly epochs: number;
  readonly seed: number;
  /** A checkpoint every this many steps, so a retried training resumes near where it stopped. */
  readonly checkpointEvery: number;
  /** Training size in pixels; null for the generator's own. */
  readonly resolution: number | null;
  /** Min-SNR loss weighting's gamma; 0 weighs every timestep alike. */
  readonly snrGamma: number;
  /** Probability of training on the empty caption, which keeps guidance's unconditional branch in step. */
  readonly captionDropout: number;
}

export interface EvaluationSettings {
  readonly prompts: PromptSource;
  readonly seedsPerPrompt: number;
  /** Seed s of held-out prompt i is `seed + 100 * i + s`: base and tuned share it, so their initial noise is identical. */
  readonly seed: number;
  readonly bootstrapResamples: number;
  /**
   * Guidance for the base-vs-tuned comparison; null: `sampling.guidanceScale`. Set it to the
   * guidance the model is used at when the training pool is sampled at a lower one.
   */
  readonly guidanceScale: number | null;
  /**
   * Scheduler for the comparison; null: `sampling.scheduler`. Set it to the one the model is
   * used with when the training pool is sampled with another (an ancestral one, say).
   */
  readonly scheduler: SchedulerClassName | null;
}

export interface ActivitySettings {
  /** An attempt that has not heartbeated for this long is retried: how soon a dead worker's work moves on. */
  readonly heartbeatTimeoutSeconds: number;
  /** Attempts per activity before the round fails (bad data fails at once). */
  readonly maximumAttempts: number;
}

export interface RoundInput {
  /** 1 for a round on the base generator; a campaign numbers its rounds. */
  readonly round: number;
  readonly generator: GeneratorRef;
  readonly judge: JudgeSettings;
  readonly selection: SelectionSettings;
  readonly prompts: PromptSource;
  readonly samplesPerPrompt: number;
  /** Training prompts are split into this many shards (prompt i goes to shard i mod shards), sampled and judged in parallel. */
  readonly shards: number;
  readonly sampling: SamplingSettings;
  readonly lora: LoraSettings;
  readonly evaluation: EvaluationSettings;
  readonly activities: ActivitySettings;
}

export interface CampaignInput {
  /** The first round's input; later rounds change only `round`, `generator.tunedUnet` and the sampling seed. */
  readonly round: RoundInput;
  readonly rounds: number;
  /** Stop when a round's win rate is not above the best so far by at least this much. */
  readonly minImprovement: number;
  /** Stop early only after this many rounds. */
  readonly patience: number;
  /**
   * Continue as new after this many rounds in one run (null: only when the server suggests it),
   * so a long campaign's history stays short; the rounds done and a stop request carry over.
   */
  readonly continueAsNewEveryRounds: number | null;
}

export interface FieldError {
  readonly field: string;
  readonly expected: string;
  readonly got: string;
}

export type Validation<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: readonly FieldError[] };

export function describeErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.field}: expected ${e.expected}, got ${e.got}`).join('; ');
}

export const ROUND_DEFAULTS = {
  selection: { rule: 'paper', minCombined: 0, perPrompt: 1 },
  samplesPerPrompt: 8,
  shards: 2,
  sampling: { steps: 20, guidanceScale: 7.5, width: 0, height: 0, negativePrompt: '', scheduler: null, seed: 0 },
  lora: {
    rank: 4,
    learningRate: 1e-4,
    lrScheduler: 'constant',
    batchSize: 16,
    maxSteps: null,
    epochs: 100,
    seed: 0,
    checkpointEvery: 50,
    resolution: null,
    snrGamma: 0,
    captionDropout: 0,
  },
  evaluation: { seedsPerPrompt: 4, seed: 500_000, bootstrapResamples: 2000, guidanceScale: null, scheduler: null },
  activities: { heartbeatTimeoutSeconds: 60, maximumAttempts: 5 },
  judge: { captioner: null, threshold: 0.5, iouThreshold: 0.5, batchSize: 8, synonyms: {}, weights: null },
} as const;

export const CAMPAIGN_DEFAULTS = { rounds: 3, minImprovement: 0, patience: 1, continueAsNewEveryRounds: null } as const;

type Fields = Readonly<Record<string, unknown>>;

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Collects errors while reading one object; each reader returns a usable placeholder on error. */
class Reader {
  constructor(
    private readonly errors: FieldError[],
    private readonly path: string,
    private readonly fields: Fields,
  ) {}

  static of(errors: FieldError[], path: string, value: unknown): Reader {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return new Reader(errors, path, value as Fields);
    if (value !== undefined) errors.push({ field: path || '(input)', expected: 'an object', got: show(value) });
    return new Reader(errors, path, {});
  }

  at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  fail(key: string, expected: string, got: unknown): void {
    this.errors.push({ field: this.at(key), expected, got: show(got) });
  }

  /** Unknown fields are errors, so a typo does not silently fall back to a default. */
  only(keys: readonly string[]): void {
    for (const key of Object.keys(this.fields)) {
      if (!keys.includes(key)) this.fail(key, `no such field (known: ${keys.join(', ')})`, this.fields[key]);
    }
  }

  raw(key: string): unknown {
    return this.fields[key];
  }

  child(key: string): Reader {
    return Reader.of(this.errors, this.at(key), this.fields[key]);
  }

  string(key: string, fallback?: string): string {
    const value = this.fields[key] ?? fallback;
    if (typeof value === 'string' && value.trim() !== '') return value;
    this.fail(key, 'a non-empty string', value);
    return '';
  }

  text(key: string, fallback: string): string {
    const value = this.fields[key] ?? fallback;
    if (typeof value === 'string') return value;
    this.fail(key, 'a string', value);
    return fallback;
  }

  optionalString(key: string): string | null {
    const value = this.fields[key];
    if (value === undefined || value === null) return null;
    return this.string(key);
  }

  number(key: string, fallback: number, min: number, max: number, expected = `a number in [${min}, ${max}]`): number {
    const value = this.fields[key] ?? fallback;
    if (typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max) return value;
    this.fail(key, expected, value);
    return fallback;
  }

  integer(key: string, fallback: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.fields[key] ?? fallback;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    this.fail(key, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`, value);
    return fallback ?? min;
  }

  optionalNumber(key: string, min: number, max: number): number | null {
    const value = this.fields[key];
    if (value === undefined || value === null) return null;
    return this.number(key, min, min, max);
  }

  optionalInteger(key: string, min: number): number | null {
    const value = this.fields[key];
    if (value === undefined || value === null) return null;
    return this.integer(key, undefined, min);
  }

  optionalOneOf<T extends string>(key: string, choices: readonly T[]): T | null {
    const value = this.fields[key];
    if (value === undefined || value === null) return null;
    if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
    this.fail(key, `null or one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`, value);
    return null;
  }

  oneOf<T extends string>(key: string, choices: readonly T[], fallback: T): T {
    const value = this.fields[key] ?? fallback;
    if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
    this.fail(key, `one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`, value);
    return fallback;
  }
}

/** Parses a prompt file's text: one `class; prompt` per line; blank lines and `#` comments are skipped. */
export function parsePromptLines(text: string, source: string): Validation<PromptLine[]> {
  const errors: FieldError[] = [];
  const lines: PromptLine[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const split = trimmed.indexOf(';');
    const className = split < 0 ? '' : trimmed.slice(0, split).trim();
    const prompt = split < 0 ? '' : trimmed.slice(split + 1).trim();
    if (className === '' || prompt === '') {
      errors.push({ field: `${source}:${i + 1}`, expected: 'a line `class; prompt`', got: show(line) });
    } else {
      lines.push({ className, text: prompt });
    }
  });
  if (errors.length === 0 && lines.length === 0) errors.push({ field: source, expected: 'at least one `class; prompt` line', got: 'no prompts' });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: lines };
}

function promptSource(reader: Reader, key: string): PromptSource {
  const value = reader.raw(key);
  if (Array.isArray(value)) {
    if (value.length === 0) reader.fail(key, 'at least one prompt', value);
    return value.map((item: unknown, i) => {
      const entry = Reader.of([], '', item);
      const className = entry.raw('className');
      const text = entry.raw('text');
      if (typeof className !== 'string' || className.trim() === '' || typeof text !== 'string' || text.trim() === '') {
        reader.fail(`${key}.${i}`, '{"className": non-empty string, "text": non-empty string}', item);
        return { className: '', text: '' };
      }
      return { className: className.trim(), text: text.trim() };
    });
  }
  const file = reader.child(key);
  file.only(['file']);
  return { file: file.string('file') };
}

function judgeSettings(reader: Reader): JudgeSettings {
  const d = ROUND_DEFAULTS.judge;
  reader.only(['detector', 'captioner', 'clip', 'threshold', 'iouThreshold', 'batchSize', 'synonyms', 'weights']);
  const synonyms = reader.raw('synonyms') ?? d.synonyms;
  const validSynonyms =
    typeof synonyms === 'object' &&
    synonyms !== null &&
    !Array.isArray(synonyms) &&
    Object.values(synonyms).every((list) => Array.isArray(list) && list.every((w) => typeof w === 'string'));
  if (!validSynonyms) reader.fail('synonyms', 'an object of class name -> list of strings', synonyms);
  const weights = reader.raw('weights') ?? d.weights;
  const validWeights =
    weights === null || (typeof weights === 'object' && !Array.isArray(weights) && Object.values(weights).every((w) => typeof w === 'number' && w >= 0));
  if (!validWeights) reader.fail('weights', 'null or an object of part -> number >= 0', weights);
  return {
    detector: reader.string('detector'),
    captioner: reader.optionalString('captioner'),
    clip: reader.string('clip'),
    threshold: reader.number('threshold', d.threshold, 0, 1),
    iouThreshold: reader.number('iouThreshold', d.iouThreshold, 0, 1),
    batchSize: reader.integer('batchSize', d.batchSize, 1, 1024),
    synonyms: validSynonyms ? (synonyms as Record<string, string[]>) : {},
    weights: validWeights ? (weights as Record<string, number> | null) : null,
  };
}

const SEED_MAX = 2 ** 32 - 1;

function roundFrom(reader: Reader): RoundInput {
  reader.only(['round', 'generator', 'judge', 'selection', 'prompts', 'samplesPerPrompt', 'shards', 'sampling', 'lora', 'evaluation', 'activities']);
  const generator = reader.child('generator');
  generator.only(['base', 'tunedUnet']);
  const selection = reader.child('selection');
  selection.only(['rule', 'minCombined', 'perPrompt']);
  const sampling = reader.child('sampling');
  const s = ROUND_DEFAULTS.sampling;
  sampling.only(Object.keys(s));
  const lora = reader.child('lora');
  const l = ROUND_DEFAULTS.lora;
  lora.only(Object.keys(l));
  const evaluation = reader.child('evaluation');
  const e = ROUND_DEFAULTS.evaluation;
  evaluation.only(['prompts', ...Object.keys(e)]);
  const activities = reader.child('activities');
  const a = ROUND_DEFAULTS.activities;
  activities.only(Object.keys(a));
  if (reader.raw('judge') === undefined) reader.fail('judge', 'an object with at least "detector"', undefined);
  if (reader.raw('generator') === undefined) reader.fail('generator', 'an object with at least "base"', undefined);
  if (reader.raw('evaluation') === undefined) reader.fail('evaluation', 'an object with at least "prompts"', undefined);
  return {
    round: reader.integer('round', 1, 1),
    generator: { base: generator.string('base'), tunedUnet: generator.optionalString('tunedUnet') },
    judge: judgeSettings(reader.child('judge')),
    selection: {
      rule: selection.oneOf('rule', ['paper', 'combined'], ROUND_DEFAULTS.selection.rule),
      minCombined: selection.number('minCombined', ROUND_DEFAULTS.selection.minCombined, 0, 1),
      perPrompt: selection.integer('perPrompt', ROUND_DEFAULTS.selection.perPrompt, 1, 1000),
    },
    prompts: promptSource(reader, 'prompts'),
    samplesPerPrompt: reader.integer('samplesPerPrompt', ROUND_DEFAULTS.samplesPerPrompt, 1, 1000),
    shards: reader.integer('shards', ROUND_DEFAULTS.shards, 1, 1000),
    sampling: {
      steps: sampling.integer('steps', s.steps, 1, 1000),
      guidanceScale: sampling.number('guidanceScale', s.guidanceScale, 0, 100),
      width: sampling.integer('width', s.width, 0, 8192),
      height: sampling.integer('height', s.height, 0, 8192),
      negativePrompt: sampling.text('negativePrompt', s.negativePrompt),
      scheduler: sampling.optionalOneOf('scheduler', SCHEDULER_CLASS_NAMES),
      seed: sampling.integer('seed', s.seed, 0, SEED_MAX),
    },
    lora: {
      rank: lora.integer('rank', l.rank, 1, 1024),
      learningRate: lora.number('learningRate', l.learningRate, Number.MIN_VALUE, 1, 'a number in (0, 1]'),
      lrScheduler: lora.oneOf('lrScheduler', ['constant', 'cosine'], l.lrScheduler),
      batchSize: lora.integer('batchSize', l.batchSize, 1, 4096),
      maxSteps: lora.optionalInteger('maxSteps', 1),
      epochs: lora.integer('epochs', l.epochs, 1, 100_000),
      seed: lora.integer('seed', l.seed, 0, SEED_MAX),
      checkpointEvery: lora.integer('checkpointEvery', l.checkpointEvery, 0),
      resolution: lora.optionalInteger('resolution', 8),
      snrGamma: lora.number('snrGamma', l.snrGamma, 0, 1000, 'a number in [0, 1000] (0: off)'),
      captionDropout: lora.number('captionDropout', l.captionDropout, 0, 0.99, 'a probability in [0, 0.99]'),
    },
    evaluation: {
      prompts: promptSource(evaluation, 'prompts'),
      seedsPerPrompt: evaluation.integer('seedsPerPrompt', e.seedsPerPrompt, 1, 100),
      seed: evaluation.integer('seed', e.seed, 0, SEED_MAX),
      bootstrapResamples: evaluation.integer('bootstrapResamples', e.bootstrapResamples, 100, 1_000_000),
      guidanceScale: evaluation.optionalNumber('guidanceScale', 0, 100),
      scheduler: evaluation.optionalOneOf('scheduler', SCHEDULER_CLASS_NAMES),
    },
    activities: {
      // Activities heartbeat every few seconds; less than 15 s would retry on a busy machine.
      heartbeatTimeoutSeconds: activities.integer('heartbeatTimeoutSeconds', a.heartbeatTimeoutSeconds, 15, 3600),
      maximumAttempts: activities.integer('maximumAttempts', a.maximumAttempts, 1, 100),
    },
  };
}

function notAnObject(input: unknown): Validation<never> | null {
  if (typeof input === 'object' && input !== null && !Array.isArray(input)) return null;
  return { ok: false, errors: [{ field: '(input)', expected: 'an object', got: show(input) }] };
}

export function validateRoundInput(input: unknown): Validation<RoundInput> {
  const refused = notAnObject(input);
  if (refused) return refused;
  const errors: FieldError[] = [];
  const value = roundFrom(Reader.of(errors, '', input));
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value };
}

export function validateCampaignInput(input: unknown): Validation<CampaignInput> {
  const refused = notAnObject(input);
  if (refused) return refused;
  const errors: FieldError[] = [];
  const reader = Reader.of(errors, '', input);
  reader.only(['round', 'rounds', 'minImprovement', 'patience', 'continueAsNewEveryRounds']);
  if (reader.raw('round') === undefined) reader.fail('round', "the first round's input (an object)", undefined);
  const round = roundFrom(reader.child('round'));
  const value: CampaignInput = {
    round,
    rounds: reader.integer('rounds', CAMPAIGN_DEFAULTS.rounds, 1, 1000),
    minImprovement: reader.number('minImprovement', CAMPAIGN_DEFAULTS.minImprovement, 0, 1),
    patience: reader.integer('patience', CAMPAIGN_DEFAULTS.patience, 1, 1000),
    continueAsNewEveryRounds: reader.optionalInteger('continueAsNewEveryRounds', 1),
  };
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value };
}

/**
 * Round r of a campaign: samples from round r-1's tuned UNet, with its own sampling seeds so
 * rounds do not redraw the same images.
 */
export function campaignRound(first: RoundInput, round: number, previousTunedUnet: string | null): RoundInput {
  return {
    ...first,
    round,
    generator: { ...first.generator, tunedUnet: previousTunedUnet ?? first.generator.tunedUnet },
    sampling: { ...first.sampling, seed: (first.sampling.seed + (round - first.round) * 1_000_003) % (SEED_MAX + 1) },
  };
}

/**
 * Why a campaign stops after the rounds so far, or null to go on: all rounds done, or the win
 * rate has not beaten the best earlier round by `minImprovement` for `patience` rounds in a row.
 */
export function campaignStopReason(winRates: readonly number[], campaign: Pick<CampaignInput, 'rounds' | 'minImprovement' | 'patience'>): string | null {
  if (winRates.length >= campaign.rounds) return `all ${campaign.rounds} rounds done`;
  let best = -Infinity;
  let stale = 0;
  for (const rate of winRates) {
    if (rate > best + campaign.minImprovement || best === -Infinity) {
      best = Math.max(best, rate);
      stale = 0;
    } else {
      stale += 1;
    }
  }
  return stale >= campaign.patience ? `win rate did not improve on ${best.toFixed(3)} by more than ${campaign.minImprovement} for ${stale} round(s)` : null;
}
