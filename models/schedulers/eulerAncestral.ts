import { eulerSigmaSchedule, predictOriginal, SigmaScheduler, type SigmaSchedule } from './euler.js';

/**
 * Euler ancestral: an Euler step down to σ_down, then fresh noise of σ_up, so that
 * σ_down² + σ_up² = σ_next². Each step consumes one noise tensor.
 */
export class EulerAncestralDiscreteScheduler extends SigmaScheduler {
  readonly usesNoise = true;

  /** diffusers' ancestral scheduler has no Karras option and always ends at σ = 0. */
  protected override schedule(steps: number): SigmaSchedule {
    return eulerSigmaSchedule({ ...this.config, useKarrasSigmas: false, finalSigmasType: 'zero' }, steps);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise?: Float32Array): Float32Array {
    if (!noise || noise.length !== sample.length) {
      throw new Error(`EulerAncestralDiscreteScheduler: step needs noise of ${sample.length} values`);
    }
    const index = this.counter.current(this.timesteps, timestep);
    const sigmaFrom = this.sigmas[index];
    const sigmaTo = this.sigmas[index + 1];
    const sigmaUp = Math.sqrt((sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo)) / (sigmaFrom * sigmaFrom));
    const sigmaDown = Math.sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
    const dt = sigmaDown - sigmaFrom;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const x0 = predictOriginal(this.config, modelOutput[i], sample[i], sigmaFrom);
      out[i] = sample[i] + ((sample[i] - x0) / sigmaFrom) * dt + noise[i] * sigmaUp;
    }
    this.counter.advance();
    return out;
  }
}
