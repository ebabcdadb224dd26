/**
 * Base-versus-tuned comparison over paired samples: both models draw each (prompt, seed) from
 * the same initial latents, so the pair, not the image, is the unit of comparison, and the
 * prompt is the unit of resampling (a prompt's seeds are not independent).
 */
import { cosine } from '../judge/scores.js';
import { mulberry32, randomIndex } from './prng.js';

export interface Pair {
  readonly prompt: string;
  readonly seed: number;
  readonly base: number;
  readonly tuned: number;
}

function mean(values: readonly number[]): number {
  if (values.length === 0) throw new Error('no pairs to compare');
  return values.reduce((s, v) => s + v, 0) / values.length;
}

/** 1 when tuned scores higher, 0 when lower, 0.5 on a tie. */
export function outcome(pair: Pair): number {
  return pair.tuned > pair.base ? 1 : pair.tuned < pair.base ? 0 : 0.5;
}

export function winRate(pairs: readonly Pair[]): number {
  return mean(pairs.map(outcome));
}

export function meanDifference(pairs: readonly Pair[]): number {
  return mean(pairs.map((p) => p.tuned - p.base));
}

/** numpy's default percentile: linear interpolation between the two nearest order statistics. */
export function percentile(sorted: readonly number[], q: number): number {
  const at = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (at - lo) * (sorted[hi]! - sorted[lo]!);
}

export interface BootstrapOptions {
  readonly resamples?: number;
  readonly seed?: number;
  /** Coverage of the interval, 0.95 for a 95% interval. */
  readonly level?: number;
}

/**
 * Percentile bootstrap interval of `statistic` over prompts: each resample draws as many
 * prompts as there are, with replacement (mulberry32 from `seed`), and takes all their pairs.
 */
export function bootstrapInterval(
  pairs: readonly Pair[],
  statistic: (pairs: readonly Pair[]) => number,
  { resamples = 2000, seed = 0, level = 0.95 }: BootstrapOptions = {},
): [number, number] {
  const byPrompt = new Map<string, Pair[]>();
  for (const p of pairs) byPrompt.set(p.prompt, [...(byPrompt.get(p.prompt) ?? []), p]);
  const groups = [...byPrompt.values()];
  if (groups.length === 0) throw new Error('no pairs to resample');
  const random = mulberry32(seed);
  const stats: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const sample: Pair[] = [];
    for (let g = 0; g < groups.length; g++) sample.push(...groups[randomIndex(random, groups.length)]!);
    stats.push(statistic(sample));
  }
  stats.sort((a, b) => a - b);
  const tail = ((1 - level) / 2) * 100;
  return [percentile(stats, tail), percentile(stats, 100 - tail)];
}

/**
 * A paired accuracy from hits (1) and misses (0): the reference's and the tuned generator's share
 * of hits, and the 95% bootstrap interval over prompts of the gain (the mean of tuned minus base).
 * Every interval of an evaluation uses seed 0, so they share their draws.
 */
export function pairedAccuracy(hits: readonly Pair[], resamples: number): { base: number; tuned: number; gainInterval: [number, number] } {
  const interval = bootstrapInterval(hits, meanDifference, { resamples, seed: 0 });
  return { base: mean(hits.map((h) => h.base)), tuned: mean(hits.map((h) => h.tuned)), gainInterval: [interval[0], interval[1]] };
}

function logChoose(n: number, k: number): number {
  let sum = 0;
  for (let i = 1; i <= k; i++) sum += Math.log(n - k + i) - Math.log(i);
  return sum;
}

/** P(X <= k) for X ~ Binomial(n, 1/2), summed in log space so large n does not underflow early. */
function binomialCdfHalf(k: number, n: number): number {
  let total = 0;
  for (let i = 0; i <= k; i++) total += Math.exp(logChoose(n, i) - n * Math.LN2);
  return total;
}

/** Two-sided exact sign test of tuned against base; ties are dropped, no non-tied pair gives 1. */
export function signTest(pairs: readonly Pair[]): number {
  const wins = pairs.filter((p) => p.tuned > p.base).length;
  const losses = pairs.filter((p) => p.tuned < p.base).length;
  const n = wins + losses;
  if (n === 0) return 1;
  return Math.min(1, 2 * binomialCdfHalf(Math.min(wins, losses), n));
}

/**
 * How different a set of images is: the mean over its unordered pairs of the cosine distance
 * (1 − cos) between their embeddings. Null for fewer than two embeddings (no pair to compare).
 */
export function meanPairwiseCosineDistance(embeddings: readonly Float32Array[]): number | null {
  if (embeddings.length < 2) return null;
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < embeddings.length; i++)
    for (let j = i + 1; j < embeddings.length; j++) {
      sum += 1 - cosine(embeddings[i]!, embeddings[j]!);
      pairs += 1;
    }
  return sum / pairs;
}

export interface DetectionOutcome {
  readonly className: string;
  readonly base: boolean;
  readonly tuned: boolean;
}

export interface ClassAccuracy {
  readonly pairs: number;
  readonly base: number;
  readonly tuned: number;
  readonly gain: number;
}

/** Share of pairs whose image the detector finds the prompt's class in, per class, base vs tuned. */
export function perClassAccuracy(outcomes: readonly DetectionOutcome[]): Map<string, ClassAccuracy> {
  const byClass = new Map<string, DetectionOutcome[]>();
  for (const o of outcomes) byClass.set(o.className, [...(byClass.get(o.className) ?? []), o]);
  return new Map(
    [...byClass].map(([cls, rows]) => {
      const base = rows.filter((r) => r.base).length / rows.length;
      const tuned = rows.filter((r) => r.tuned).length / rows.length;
      return [cls, { pairs: rows.length, base, tuned, gain: tuned - base }];
    }),
  );
}
