import { readFile } from 'node:fs/promises';

import { boolean, custom, integer, list, nullable, number, object, oneOf, show, type FieldError } from '../../config/schema.js';
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

const snakeCase = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const positive = number({ min: 0, max: Infinity, exclusiveMin: true, expected: 'a positive number', meaning: 'a positive number' });
const anyNumber = number({ min: -Infinity, max: Infinity, meaning: 'a number' });

/** The fields this runtime reads, by their camelCase names; the file spells them in snake_case. */
const FIELDS = object<Omit<SchedulerConfig, 'className'>>(
  {
    numTrainTimesteps: integer({ min: 2, meaning: 'training timesteps' }),
    betaStart: number({ min: 0, max: 1, exclusiveMin: true, exclusiveMax: true, meaning: 'first beta' }),
    betaEnd: number({ min: 0, max: 1, exclusiveMin: true, exclusiveMax: true, meaning: 'last beta' }),
    betaSchedule: oneOf(['linear', 'scaled_linear'], { meaning: 'beta schedule' }),
    trainedBetas: nullable(list(anyNumber, { meaning: 'betas' })),
    predictionType: oneOf(['epsilon', 'v_prediction'], { meaning: 'what the model predicts' }),
    timestepSpacing: oneOf(['leading', 'trailing', 'linspace'], { meaning: 'timestep spacing' }),
    stepsOffset: integer({ min: 0, meaning: 'steps offset' }),
    clipSample: boolean({ meaning: 'clip the predicted sample' }),
    clipSampleRange: positive,
    setAlphaToOne: boolean({ meaning: 'final alpha is one' }),
    useKarrasSigmas: boolean({ meaning: 'Karras sigmas' }),
    sigmaMin: nullable(positive),
    sigmaMax: nullable(positive),
    finalSigmasType: oneOf(['zero', 'sigma_min'], { meaning: 'final sigma' }),
    solverOrder: oneOf([1, 2], { meaning: 'solver order' }),
    solverType: oneOf(['midpoint', 'heun'], { meaning: 'solver type' }),
    lowerOrderFinal: boolean({ meaning: 'lower order at the final steps' }),
    eulerAtFinal: boolean({ meaning: 'Euler at the final step' }),
    // diffusers' DPM-Solver default is -Infinity, which no finite-number field accepts.
    lambdaMinClipped: custom<number>({
      doc: { type: 'number', required: true, meaning: 'lambda clip' },
      read(value, at, errors) {
        if (typeof value === 'number' && !Number.isNaN(value) && value !== Infinity) return value;
        errors.push({ field: at, expected: 'a number or -Infinity', got: show(value) });
        return -Infinity;
      },
      jsonSchema: () => ({ type: 'number' }),
    }),
  },
  { meaning: 'a diffusers scheduler config', required: true, unknownFields: 'ignore', keyOf: snakeCase },
);

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
  const errors: FieldError[] = [];
  for (const [field, off] of Object.entries(UNSUPPORTED_UNLESS)) {
    if (field in merged && merged[field] !== off)
      errors.push({ field, expected: `${JSON.stringify(off)} (other values are not supported)`, got: show(merged[field]) });
  }
  if (className === 'DPMSolverMultistepScheduler' && merged['algorithm_type'] !== 'dpmsolver++') {
    errors.push({ field: 'algorithm_type', expected: 'one of "dpmsolver++"', got: show(merged['algorithm_type']) });
  }
  const config = FIELDS.read(merged, '', errors);
  if (errors.length === 0 && config.trainedBetas !== null && config.trainedBetas.length !== config.numTrainTimesteps) {
    errors.push({ field: 'trained_betas', expected: `a list of num_train_timesteps (${config.numTrainTimesteps}) numbers`, got: show(config.trainedBetas) });
  }
  if (errors.length > 0) {
    throw new SchedulerConfigError(`${source}: ${errors.map((e) => `field "${e.field}" must be ${e.expected}, got ${e.got}`).join('; ')}`);
  }
  return { className, ...config };
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
