import { parseSchedulerConfig, type RawSchedulerConfig, type SchedulerConfig } from './config.js';
import type { SchedulerClassName } from './names.js';
import { DDIMScheduler } from './ddim.js';
import { EulerDiscreteScheduler } from './euler.js';
import { EulerAncestralDiscreteScheduler } from './eulerAncestral.js';
import { DPMSolverMultistepScheduler } from './dpmSolverMultistep.js';
import type { Scheduler } from './scheduler.js';

/** diffusers' `_class_name` -> the scheduler implementing it. */
export const SCHEDULERS: Record<SchedulerClassName, new (config: SchedulerConfig) => Scheduler> = {
  DDIMScheduler,
  EulerDiscreteScheduler,
  EulerAncestralDiscreteScheduler,
  DPMSolverMultistepScheduler,
};

export function createScheduler(config: SchedulerConfig): Scheduler {
  return new SCHEDULERS[config.className](config);
}

/**
 * A scheduler choice relative to a generator's own config, as diffusers'
 * `OtherScheduler.from_config(pipe.scheduler.config, **overrides)`: e.g.
 * `{ className: 'DPMSolverMultistepScheduler', overrides: { use_karras_sigmas: true } }`.
 */
export interface SchedulerChoice {
  readonly className?: SchedulerClassName;
  readonly overrides?: RawSchedulerConfig;
}

export function schedulerFromChoice(base: RawSchedulerConfig, source: string, choice: SchedulerChoice = {}): Scheduler {
  return createScheduler(parseSchedulerConfig(base, source, choice));
}
