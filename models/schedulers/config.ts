import { readFile } from 'node:fs/promises';

import { SchedulerConfigError } from '../errors.js';
import { isSchedulerClassName, SCHEDULER_CLASS_NAMES, type SchedulerClassName } from './names.js';

export type BetaSchedule = 'linear' | 'scaled_linear';
export type PredictionType = 'epsilon' | 'v_prediction';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';
export type FinalSigmasType = 'zero' | 'sigma_min';
export type SolverType = 'midpoint' | 'heun';

/** A diffusers scheduler configuration, validated; field meanings are diffusers' own. */
export interface SchedulerConfig {
  readonly className: SchedulerClassName;
  readonly numTrainTimesteps: number;
  readonly betaStart: number;
  readonly betaEnd: number;
  readonly betaSchedule: BetaSchedule;
  readonly trainedBetas: readonly number[] | null;
  readonly predictionType: PredictionType;
  readonly timestepSpacing: TimestepSpacing;
  readonly stepsOffset: number;
  /** DDIM */
  readonly clipSample: boolean;
  readonly clipSampleRange: number;
  readonly setAlphaToOne: boolean;
  /** Euler, DPM-Solver */
  readonly useKarrasSigmas: boolean;
  readonly sigmaMin: number | null;
  readonly sigmaMax: number | null;
  readonly finalSigmasType: FinalSigmasType;
  /** DPM-Solver */
  readonly solverOrder: 1 | 2;
  readonly solverType: SolverType;
  readonly lowerOrderFinal: boolean;
  readonly eulerAtFinal: boolean;
  readonly lambdaMinClipped: number;
}

export type RawSchedulerConfig = Readonly<Record<string, unknown>>;

/** Where each class's diffusers constructor defaults differ from the shared ones. */
const CLASS_DEFAULTS: Record<SchedulerClassName, RawSchedulerConfig> = {
  DDIMScheduler: { timestep_spacing: 'leading', clip_sample: true, set_alpha_to_one: true },
  EulerDiscreteScheduler: { timestep_spacing: 'linspace' },
  EulerAncestralDiscreteScheduler: { timestep_spacing: 'linspace' },
  DPMSolverMultistepScheduler: { timestep_spacing: 'linspace' },
};

const SHARED_DEFAULTS: RawSchedulerConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  prediction_type: 'epsilon',
  steps_offset: 0,
  clip_sample: false,
  clip_sample_range: 1.0,
  set_alpha_to_one: false,
  use_karras_sigmas: false,
  sigma_min: null,
  sigma_max: null,
  final_sigmas_type: 'zero',
  solver_order: 2,
  solver_type: 'midpoint',
  algorithm_type: 'dpmsolver++',
  lower_order_final: true,
  euler_at_final: false,
  lambda_min_clipped: -Infinity,
};

/**
 * Options diffusers offers that this runtime does not implement. Each is accepted only
 * at the value that means "off", so a config asking for one fails loudly instead of
 * sampling differently from diffusers.
 */
const UNSUPPORTED_UNLESS: Readonly<Record<string, unknown>> = {
  thresholding: false,
  rescale_betas_zero_snr: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  use_lu_lambdas: false,
  use_flow_sigmas: false,
  use_dynamic_shifting: false,
  timestep_type: 'discrete',
  interpolation_type: 'linear',
  variance_type: null,
};

class FieldReader {
  constructor(
    private readonly raw: RawSchedulerConfig,
    private readonly source: string,
  ) {}

  fail(field: string, expected: string): never {
    const got = field in this.raw ? JSON.stringify(this.raw[field]) : 'nothing';
    throw new SchedulerConfigError(`${this.source}: field "${field}" must be ${expected}, got ${got}`);
  }

  number(field: string, check: (value: number) => boolean = Number.isFinite, expected = 'a finite number'): number {
    const value = this.raw[field];
    return typeof value === 'number' && check(value) ? value : this.fail(field, expected);
  }

  integer(field: string, min: number): number {
    return this.number(field, (v) => Number.isInteger(v) && v >= min, `an integer >= ${min}`);
  }

  boolean(field: string): boolean {
    const value = this.raw[field];
    return typeof value === 'boolean' ? value : this.fail(field, 'true or false');
  }

  oneOf<T extends string | number>(field: string, allowed: readonly T[]): T {
    const value = this.raw[field];
    const found = allowed.find((a) => a === value);
    return found ?? this.fail(field, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  }

  nullableNumber(field: string): number | null {
    return this.raw[field] === null ? null : this.number(field, (v) => Number.isFinite(v) && v > 0, 'null or a positive number');
  }

  numberList(field: string): readonly number[] | null {
    const value = this.raw[field];
    if (value === null) return null;
    if (Array.isArray(value) && value.every((v): v is number => typeof v === 'number' && Number.isFinite(v))) return value;
    return this.fail(field, 'null or a list of numbers');
  }
}

/**
 * Validates a scheduler config as diffusers' `from_config` reads it: the class's
 * defaults, then the file's fields, then `overrides`. `className` (when given) replaces
 * the file's `_class_name`, as loading another scheduler class from the same config does.
 * `source` names the file in errors.
 */
export function parseSchedulerConfig(raw: unknown, source: string, options: { className?: string; overrides?: RawSchedulerConfig } = {}): SchedulerConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SchedulerConfigError(`${source}: expected a JSON object of scheduler fields`);
  }
  const fields = raw as RawSchedulerConfig;
  const className = options.className ?? fields['_class_name'];
  if (!isSchedulerClassName(className)) {
    throw new SchedulerConfigError(
      `${source}: field "_class_name" must be one of ${SCHEDULER_CLASS_NAMES.join(', ')}, got ${JSON.stringify(className ?? null)}`,
    );
  }
  const merged: RawSchedulerConfig = { ...SHARED_DEFAULTS, ...CLASS_DEFAULTS[className], ...fields, ...options.overrides };
  const read = new FieldReader(merged, source);
  for (const [field, off] of Object.entries(UNSUPPORTED_UNLESS)) {
    if (field in merged && merged[field] !== off) read.fail(field, `${JSON.stringify(off)} (other values are not supported)`);
  }
  if (className === 'DPMSolverMultistepScheduler') read.oneOf('algorithm_type', ['dpmsolver++']);
  const numTrainTimesteps = read.integer('num_train_timesteps', 2);
  const trainedBetas = read.numberList('trained_betas');
  if (trainedBetas !== null && trainedBetas.length !== numTrainTimesteps) {
    read.fail('trained_betas', `a list of num_train_timesteps (${numTrainTimesteps}) numbers`);
  }
  return {
    className,
    numTrainTimesteps,
    betaStart: read.number('beta_start', (v) => v > 0 && v < 1, 'a number in (0, 1)'),
    betaEnd: read.number('beta_end', (v) => v > 0 && v < 1, 'a number in (0, 1)'),
    betaSchedule: read.oneOf('beta_schedule', ['linear', 'scaled_linear']),
    trainedBetas,
    predictionType: read.oneOf('prediction_type', ['epsilon', 'v_prediction']),
    timestepSpacing: read.oneOf('timestep_spacing', ['leading', 'trailing', 'linspace']),
    stepsOffset: read.integer('steps_offset', 0),
    clipSample: read.boolean('clip_sample'),
    clipSampleRange: read.number('clip_sample_range', (v) => v > 0, 'a positive number'),
    setAlphaToOne: read.boolean('set_alpha_to_one'),
    useKarrasSigmas: read.boolean('use_karras_sigmas'),
    sigmaMin: read.nullableNumber('sigma_min'),
    sigmaMax: read.nullableNumber('sigma_max'),
    finalSigmasType: read.oneOf('final_sigmas_type', ['zero', 'sigma_min']),
    solverOrder: read.oneOf('solver_order', [1, 2]),
    solverType: read.oneOf('solver_type', ['midpoint', 'heun']),
    lowerOrderFinal: read.boolean('lower_order_final'),
    eulerAtFinal: read.boolean('euler_at_final'),
    lambdaMinClipped: read.number('lambda_min_clipped', (v) => !Number.isNaN(v), 'a number or -Infinity'),
  };
}

/**
 * Python's json module writes infinities as bare `Infinity` / `-Infinity` (diffusers'
 * DPM-Solver config holds `"lambda_min_clipped": -Infinity`), which JSON.parse rejects.
 * Quoting them as sentinels outside strings, then mapping back, reads such files.
 */
export function parsePythonJson(text: string): unknown {
  const INF = '@@python-infinity@@';
  const quoted = text.replace(/("(?:[^"\\]|\\.)*")|(-?)\bInfinity\b/g, (match, str: string | undefined, sign: string) =>
    str !== undefined ? match : `"${sign}${INF}"`,
  );
  return JSON.parse(quoted, (_key, value: unknown) => (value === INF ? Infinity : value === `-${INF}` ? -Infinity : value));
}

export async function readRawSchedulerConfig(path: string): Promise<RawSchedulerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new SchedulerConfigError(`${path}: cannot read the scheduler config (${(error as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = parsePythonJson(text);
  } catch (error) {
    throw new SchedulerConfigError(`${path}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SchedulerConfigError(`${path}: expected a JSON object of scheduler fields`);
  }
  return raw as RawSchedulerConfig;
}
