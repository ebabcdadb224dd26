/**
 * Noise-schedule arithmetic shared by the schedulers, in float64. Array shapes and
 * rounding follow numpy where diffusers uses numpy, so timesteps come out identical.
 */
import type { SchedulerConfig, TimestepSpacing } from './config.js';

/** numpy's `round`: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** numpy's `linspace(start, stop, num)` including `stop`. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  if (num === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = start + i * step;
  out[num - 1] = stop;
  return out;
}

/** numpy's `arange(start, stop, step)` for a negative step. */
function arangeDown(start: number, stop: number, step: number): Float64Array {
  const count = Math.max(0, Math.ceil((stop - start) / step));
  return Float64Array.from({ length: count }, (_, i) => start + i * step);
}

export function betas(config: SchedulerConfig): Float64Array {
  const n = config.numTrainTimesteps;
  if (config.trainedBetas) return Float64Array.from(config.trainedBetas);
  if (config.betaSchedule === 'linear') return linspace(config.betaStart, config.betaEnd, n);
  return linspace(Math.sqrt(config.betaStart), Math.sqrt(config.betaEnd), n).map((b) => b * b);
}

export function alphasCumprod(config: SchedulerConfig): Float64Array {
  const out = new Float64Array(config.numTrainTimesteps);
  let product = 1;
  betas(config).forEach((beta, i) => {
    product *= 1 - beta;
    out[i] = product;
  });
  return out;
}

/** σ(t) = sqrt((1 − ᾱ_t) / ᾱ_t) for every training timestep, increasing with t. */
export function trainingSigmas(cumprod: Float64Array): Float64Array {
  return cumprod.map((a) => Math.sqrt((1 - a) / a));
}

/**
 * Inference timesteps, descending, as DDIM and the Euler schedulers space them.
 * `roundLinspace`: DDIM rounds linspace timesteps to integers, Euler keeps them fractional.
 */
export function spacedTimesteps(spacing: TimestepSpacing, numTrainTimesteps: number, steps: number, stepsOffset: number, roundLinspace: boolean): Float64Array {
  switch (spacing) {
    case 'linspace': {
      const ts = linspace(0, numTrainTimesteps - 1, steps).reverse();
      return roundLinspace ? ts.map(roundHalfEven) : ts.map(Math.fround);
    }
    case 'leading': {
      const ratio = Math.floor(numTrainTimesteps / steps);
      return Float64Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio + stepsOffset);
    }
    case 'trailing':
      return arangeDown(numTrainTimesteps, 0, -numTrainTimesteps / steps).map((t) => roundHalfEven(t) - 1);
  }
}

/**
 * DPM-Solver's spacing: it spaces `steps + 1` points and drops the last, and stops at
 * the last timestep whose log-SNR is above `lambda_min_clipped`.
 */
export function dpmSolverTimesteps(config: SchedulerConfig, steps: number, cumprod: Float64Array): Float64Array {
  const lambdas = cumprod.map((a) => Math.log(Math.sqrt(a)) - Math.log(Math.sqrt(1 - a)));
  // searchsorted over the increasing flipped lambdas: how many are below the clip.
  let clipped = 0;
  for (let i = lambdas.length - 1; i >= 0 && lambdas[i] < config.lambdaMinClipped; i--) clipped++;
  const last = config.numTrainTimesteps - clipped;
  switch (config.timestepSpacing) {
    case 'linspace':
      return linspace(0, last - 1, steps + 1)
        .reverse()
        .subarray(0, steps)
        .map(roundHalfEven);
    case 'leading': {
      const ratio = Math.floor(last / (steps + 1));
      return Float64Array.from({ length: steps }, (_, i) => (steps - i) * ratio + config.stepsOffset);
    }
    case 'trailing':
      return arangeDown(last, 0, -config.numTrainTimesteps / steps).map((t) => roundHalfEven(t) - 1);
  }
}

/** `ys` (given at 0, 1, 2, ...) linearly interpolated at `x`, clamped at the ends, like np.interp. */
export function interpolate(ys: Float64Array, x: number): number {
  if (x <= 0) return ys[0];
  if (x >= ys.length - 1) return ys[ys.length - 1];
  const low = Math.floor(x);
  const w = x - low;
  return ys[low] * (1 - w) + ys[low + 1] * w;
}

/** Karras et al. (2022) ρ = 7 schedule from σ_max down to σ_min in `steps` points. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, steps: number): Float64Array {
  const rho = 7;
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return linspace(0, 1, steps).map((ramp) => (maxInv + ramp * (minInv - maxInv)) ** rho);
}

/** The fractional training timestep whose σ is `sigma`, interpolating log σ. */
export function sigmaToTimestep(sigma: number, logSigmas: Float64Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  let low = 0;
  for (let i = 0; i < logSigmas.length; i++) if (logSigmas[i] <= logSigma) low = i;
  low = Math.min(low, logSigmas.length - 2);
  const w = Math.min(1, Math.max(0, (logSigmas[low] - logSigma) / (logSigmas[low] - logSigmas[low + 1])));
  return (1 - w) * low + w * (low + 1);
}
