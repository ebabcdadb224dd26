/**
 * Several LoRAs from one dataset (`lora.seeds`): which training prompts are withheld to choose
 * between them, which one is kept, and how far apart they landed. Pure, and free of Node imports:
 * the curate and validate activities agree on the split through it, and the round's workflow
 * chooses with it.
 */
import type { LoraSeedFigures, LoraSeedsFigures, ValidationResult } from './activities.js';

/** The trainer seeds of a round's LoRAs: `seed`, `seed + 1`, ... (`lora.seeds` of them). */
export function trainerSeeds(lora: { readonly seed: number; readonly seeds: number }): number[] {
  return Array.from({ length: lora.seeds }, (_, i) => lora.seed + i);
}

/** A 32-bit integer hash (a murmur3 finaliser); the same everywhere JavaScript runs. */
function mix(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The training prompts withheld for validation: `round(share × count)` of them, at least one and
 * never all, drawn by a seeded hash of each prompt's index (so the split does not follow the
 * file's order, and a prompt's membership depends only on its index and the seed). Sorted prompt
 * indices; null when there are fewer than two prompts (nothing could be both trained and validated).
 */
export function validationSplit(count: number, share: number, seed: number): number[] | null {
  if (count < 2) return null;
  const size = Math.min(count - 1, Math.max(1, Math.round(share * count)));
  const rank = (i: number) => mix(mix(seed) ^ Math.imul(i + 1, 0x9e3779b1));
  const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => rank(a) - rank(b) || a - b);
  return order.slice(0, size).sort((a, b) => a - b);
}

/**
 * The LoRA a round keeps: the highest validation class accuracy; on a tie, the higher paired CLIP
 * win rate against the base on the same validation images; then the lowest trainer seed, so the
 * choice never depends on which training finished first.
 */
export function chooseLora<T extends Pick<ValidationResult, 'seed' | 'accuracyTuned' | 'winRate'>>(candidates: readonly T[]): T {
  if (candidates.length === 0) throw new Error('chooseLora: no LoRA to choose from');
  const better = (a: T, b: T) => b.accuracyTuned - a.accuracyTuned || b.winRate - a.winRate || a.seed - b.seed;
  return [...candidates].sort(better)[0]!;
}

/** Minimum, maximum, mean and sample standard deviation (n − 1; 0 for one value) of some figures. */
export function spread(values: readonly number[]): { min: number; max: number; mean: number; sd: number } {
  if (values.length === 0) throw new Error('spread: no values');
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.length < 2 ? 0 : values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
  return { min: Math.min(...values), max: Math.max(...values), mean, sd: Math.sqrt(variance) };
}

/** What a round reports of its LoRAs: each one's validation figures, which one it kept and the spread of their accuracy gains. */
export function loraSeedsFigures(validations: readonly ValidationResult[]): LoraSeedsFigures {
  const kept = chooseLora(validations);
  const perSeed: LoraSeedFigures[] = [...validations]
    .sort((a, b) => a.seed - b.seed)
    .map((v) => ({
      seed: v.seed,
      lora: v.lora,
      validation: v.manifest,
      accuracyBase: v.accuracyBase,
      accuracy: v.accuracyTuned,
      accuracyGain: v.accuracyTuned - v.accuracyBase,
      winRate: v.winRate,
      finalLoss: v.finalLoss,
      kept: v.seed === kept.seed,
    }));
  return {
    kept: kept.seed,
    validationPrompts: kept.prompts,
    validationPairs: kept.pairs,
    perSeed,
    accuracyGain: spread(perSeed.map((s) => s.accuracyGain)),
  };
}
