import type { SchedulerConfig } from './config.js';

/**
 * A diffusion sampler's update rule, diffusers-style: a small stateful object.
 * Call `setTimesteps` once per sampling run, then for each of `timesteps` in order:
 * `scaleModelInput`, run the model, `step`. Latents are float32, laid out NCHW.
 */
export interface Scheduler {
  readonly config: SchedulerConfig;
  /** Descending timesteps for the current run (fractional for some Euler schedules). */
  readonly timesteps: Float64Array;
  /** Standard deviation the initial unit-variance latents are multiplied by. */
  readonly initNoiseSigma: number;
  /** Whether `step` consumes fresh unit Gaussian noise (ancestral sampling). */
  readonly usesNoise: boolean;
  setTimesteps(steps: number): void;
  scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  /** One update from `timestep` to the next; `noise` (same size as `sample`) is required when `usesNoise`. */
  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: Float32Array): Float32Array;
}

/**
 * Position in the schedule, advanced by each step. Like diffusers, schedulers that
 * index per-step sigmas find their place by counting steps; a timestep out of order
 * is a caller bug, so it throws rather than sampling the wrong noise level.
 */
export class StepCounter {
  private index = 0;

  reset(): void {
    this.index = 0;
  }

  current(timesteps: Float64Array, timestep: number): number {
    if (this.index >= timesteps.length) {
      throw new Error(`step called ${this.index + 1} times for ${timesteps.length} timesteps; call setTimesteps first`);
    }
    if (timesteps[this.index] !== timestep) {
      throw new Error(`step expected timestep ${timesteps[this.index]} (step ${this.index}), got ${timestep}`);
    }
    return this.index;
  }

  advance(): void {
    this.index++;
  }
}

export function checkSteps(steps: number, numTrainTimesteps: number): void {
  if (!Number.isInteger(steps) || steps < 1 || steps > numTrainTimesteps) {
    throw new RangeError(`steps must be an integer in [1, ${numTrainTimesteps}], got ${steps}`);
  }
}
