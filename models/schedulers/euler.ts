import type { SchedulerConfig } from './config.js';
import { alphasCumprod, interpolate, karrasSigmas, sigmaToTimestep, spacedTimesteps, trainingSigmas } from './schedule.js';
import { checkSteps, StepCounter, type Scheduler } from './scheduler.js';

export interface SigmaSchedule {
  readonly timesteps: Float64Array;
  /** One per timestep, then the final σ the last step lands on. */
  readonly sigmas: Float64Array;
}

/** The Euler schedulers' σ schedule in diffusers' "k-diffusion" parameterisation. */
export function eulerSigmaSchedule(config: SchedulerConfig, steps: number): SigmaSchedule {
  const cumprod = alphasCumprod(config);
  const trainSigmas = trainingSigmas(cumprod);
  let timesteps: Float64Array = spacedTimesteps(config.timestepSpacing, config.numTrainTimesteps, steps, config.stepsOffset, false);
  let sigmas: Float64Array = timesteps.map((t) => interpolate(trainSigmas, t));
  if (config.useKarrasSigmas) {
    sigmas = karrasSigmas(config.sigmaMin ?? sigmas[sigmas.length - 1], config.sigmaMax ?? sigmas[0], steps);
    const logSigmas = trainSigmas.map(Math.log);
    timesteps = sigmas.map((s) => Math.fround(sigmaToTimestep(s, logSigmas)));
  }
  const last = config.finalSigmasType === 'zero' ? 0 : trainSigmas[0];
  const withLast = new Float64Array(sigmas.length + 1);
  withLast.set(sigmas);
  withLast[sigmas.length] = last;
  return { timesteps, sigmas: withLast };
}

/** Leading spacing never reaches the top σ, so its initial noise keeps the unit signal variance too. */
export function eulerInitNoiseSigma(config: SchedulerConfig, sigmas: Float64Array): number {
  const max = sigmas.reduce((a, b) => Math.max(a, b), 0);
  return config.timestepSpacing === 'leading' ? Math.sqrt(max * max + 1) : max;
}

/** The model output turned into the predicted clean sample x₀ at noise level σ. */
export function predictOriginal(config: SchedulerConfig, modelOutput: number, sample: number, sigma: number): number {
  return config.predictionType === 'epsilon'
    ? sample - sigma * modelOutput
    : modelOutput * (-sigma / Math.sqrt(sigma * sigma + 1)) + sample / (sigma * sigma + 1);
}

/** Abstract base: σ-indexed schedule and input scaling shared by Euler and Euler ancestral. */
export abstract class SigmaScheduler implements Scheduler {
  abstract readonly usesNoise: boolean;
  timesteps: Float64Array = new Float64Array(0);
  initNoiseSigma = 1;
  protected sigmas: Float64Array = new Float64Array(0);
  protected readonly counter = new StepCounter();

  constructor(readonly config: SchedulerConfig) {}

  setTimesteps(steps: number): void {
    checkSteps(steps, this.config.numTrainTimesteps);
    const schedule = this.schedule(steps);
    this.timesteps = schedule.timesteps;
    this.sigmas = schedule.sigmas;
    this.initNoiseSigma = eulerInitNoiseSigma(this.config, schedule.sigmas);
    this.counter.reset();
  }

  protected schedule(steps: number): SigmaSchedule {
    return eulerSigmaSchedule(this.config, steps);
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const sigma = this.sigmas[this.counter.current(this.timesteps, timestep)];
    const scale = 1 / Math.sqrt(sigma * sigma + 1);
    return sample.map((x) => x * scale);
  }

  abstract step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: Float32Array): Float32Array;
}

/** Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2 without churn). */
export class EulerDiscreteScheduler extends SigmaScheduler {
  readonly usesNoise = false;

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const index = this.counter.current(this.timesteps, timestep);
    const sigma = this.sigmas[index];
    const dt = this.sigmas[index + 1] - sigma;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const x0 = predictOriginal(this.config, modelOutput[i], sample[i], sigma);
      out[i] = sample[i] + ((sample[i] - x0) / sigma) * dt;
    }
    this.counter.advance();
    return out;
  }
}
