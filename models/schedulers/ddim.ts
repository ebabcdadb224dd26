import type { SchedulerConfig } from './config.js';
import { alphasCumprod, spacedTimesteps } from './schedule.js';
import { checkSteps, type Scheduler } from './scheduler.js';

/** DDIM (Song et al., 2020) with η = 0: deterministic, as StableDiffusionPipeline runs it. */
export class DDIMScheduler implements Scheduler {
  readonly initNoiseSigma = 1;
  readonly usesNoise = false;
  timesteps: Float64Array = new Float64Array(0);
  private readonly cumprod: Float64Array;
  private readonly finalCumprod: number;
  private stride = 0;

  constructor(readonly config: SchedulerConfig) {
    this.cumprod = alphasCumprod(config);
    // The last step has no previous ᾱ: either a clean image (1) or the first training ᾱ.
    this.finalCumprod = config.setAlphaToOne ? 1 : this.cumprod[0];
  }

  setTimesteps(steps: number): void {
    checkSteps(steps, this.config.numTrainTimesteps);
    const { timestepSpacing, numTrainTimesteps, stepsOffset } = this.config;
    this.timesteps = spacedTimesteps(timestepSpacing, numTrainTimesteps, steps, stepsOffset, true);
    // diffusers steps back by T // steps whatever the spacing; matching it keeps parity.
    this.stride = Math.floor(numTrainTimesteps / steps);
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    if (this.stride === 0) throw new Error('DDIMScheduler: call setTimesteps before step');
    if (!Number.isInteger(timestep) || timestep < 0 || timestep >= this.cumprod.length) {
      throw new RangeError(`DDIMScheduler: timestep must be an integer training timestep, got ${timestep}`);
    }
    const previous = timestep - this.stride;
    const alpha = this.cumprod[timestep];
    const alphaPrev = previous >= 0 ? this.cumprod[previous] : this.finalCumprod;
    const sqrtAlpha = Math.sqrt(alpha);
    const sqrtBeta = Math.sqrt(1 - alpha);
    const sqrtAlphaPrev = Math.sqrt(alphaPrev);
    const sqrtBetaPrev = Math.sqrt(1 - alphaPrev);
    const { predictionType, clipSample, clipSampleRange } = this.config;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const x = sample[i];
      const m = modelOutput[i];
      let x0 = predictionType === 'epsilon' ? (x - sqrtBeta * m) / sqrtAlpha : sqrtAlpha * x - sqrtBeta * m;
      const eps = predictionType === 'epsilon' ? m : sqrtAlpha * m + sqrtBeta * x;
      if (clipSample) x0 = Math.min(clipSampleRange, Math.max(-clipSampleRange, x0));
      out[i] = sqrtAlphaPrev * x0 + sqrtBetaPrev * eps;
    }
    return out;
  }
}
