import type { SchedulerConfig } from './config.js';
import { alphasCumprod, dpmSolverTimesteps, interpolate, karrasSigmas, roundHalfEven, sigmaToTimestep, trainingSigmas } from './schedule.js';
import { checkSteps, StepCounter, type Scheduler } from './scheduler.js';

/** α_t, σ_t and the log-SNR λ_t = log α_t − log σ_t of a k-diffusion σ. */
function noiseLevel(sigma: number): { alpha: number; sigma: number; lambda: number } {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1);
  const sigmaT = sigma * alpha;
  return { alpha, sigma: sigmaT, lambda: Math.log(alpha) - Math.log(sigmaT) };
}

/**
 * DPM-Solver++ (Lu et al., 2022) multistep, first or second order, in data-prediction
 * form. Optional Karras σ spacing. Like diffusers, the first step is first order (no
 * history yet) and so is the last when `lower_order_final` applies or the schedule
 * ends at σ = 0, which keeps few-step sampling stable.
 */
export class DPMSolverMultistepScheduler implements Scheduler {
  readonly initNoiseSigma = 1;
  readonly usesNoise = false;
  timesteps: Float64Array = new Float64Array(0);
  private sigmas: Float64Array = new Float64Array(0);
  private readonly counter = new StepCounter();
  private readonly cumprod: Float64Array;
  /** The previous step's x₀ prediction; null until one step has run. */
  private previousX0: Float32Array | null = null;

  constructor(readonly config: SchedulerConfig) {
    this.cumprod = alphasCumprod(config);
  }

  setTimesteps(steps: number): void {
    checkSteps(steps, this.config.numTrainTimesteps);
    const trainSigmas = trainingSigmas(this.cumprod);
    let timesteps: Float64Array = dpmSolverTimesteps(this.config, steps, this.cumprod);
    let sigmas: Float64Array;
    if (this.config.useKarrasSigmas) {
      const sigmaMin = this.config.sigmaMin ?? trainSigmas[0];
      const sigmaMax = this.config.sigmaMax ?? trainSigmas[trainSigmas.length - 1];
      sigmas = karrasSigmas(sigmaMin, sigmaMax, steps);
      const logSigmas = trainSigmas.map(Math.log);
      timesteps = sigmas.map((s) => roundHalfEven(sigmaToTimestep(s, logSigmas)));
    } else {
      sigmas = timesteps.map((t) => interpolate(trainSigmas, t));
    }
    this.timesteps = timesteps;
    this.sigmas = new Float64Array(sigmas.length + 1);
    this.sigmas.set(sigmas);
    this.sigmas[sigmas.length] = this.config.finalSigmasType === 'zero' ? 0 : trainSigmas[0];
    this.counter.reset();
    this.previousX0 = null;
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const index = this.counter.current(this.timesteps, timestep);
    const count = this.timesteps.length;
    const { solverOrder, lowerOrderFinal, eulerAtFinal, finalSigmasType } = this.config;
    const isLast = index === count - 1;
    const firstOrderAtEnd = isLast && (eulerAtFinal || (lowerOrderFinal && count < 15) || finalSigmasType === 'zero');
    const x0 = this.predictOriginal(modelOutput, sample, this.sigmas[index]);
    const useSecondOrder = solverOrder === 2 && this.previousX0 !== null && !firstOrderAtEnd;
    const next = useSecondOrder ? this.secondOrder(index, x0, sample) : this.firstOrder(index, x0, sample);
    this.previousX0 = x0;
    this.counter.advance();
    return next;
  }

  private predictOriginal(modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
    const { alpha, sigma: sigmaT } = noiseLevel(sigma);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      out[i] = this.config.predictionType === 'epsilon' ? (sample[i] - sigmaT * modelOutput[i]) / alpha : alpha * sample[i] - sigmaT * modelOutput[i];
    }
    return out;
  }

  private firstOrder(index: number, x0: Float32Array, sample: Float32Array): Float32Array {
    const t = noiseLevel(this.sigmas[index + 1]);
    const s = noiseLevel(this.sigmas[index]);
    const h = t.lambda - s.lambda;
    const sampleWeight = t.sigma / s.sigma;
    const x0Weight = -t.alpha * Math.expm1(-h);
    return sample.map((x, i) => sampleWeight * x + x0Weight * x0[i]);
  }

  private secondOrder(index: number, x0: Float32Array, sample: Float32Array): Float32Array {
    const previous = this.previousX0 as Float32Array;
    const t = noiseLevel(this.sigmas[index + 1]);
    const s0 = noiseLevel(this.sigmas[index]);
    const s1 = noiseLevel(this.sigmas[index - 1]);
    const h = t.lambda - s0.lambda;
    const r0 = (s0.lambda - s1.lambda) / h;
    const sampleWeight = t.sigma / s0.sigma;
    const d0Weight = -t.alpha * Math.expm1(-h);
    const d1Weight = this.config.solverType === 'midpoint' ? 0.5 * d0Weight : t.alpha * (Math.expm1(-h) / h + 1);
    return sample.map((x, i) => {
      const d1 = (x0[i] - previous[i]) / r0;
      return sampleWeight * x + d0Weight * x0[i] + d1Weight * d1;
    });
  }
}
