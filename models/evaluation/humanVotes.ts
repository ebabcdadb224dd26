/**
 * People's votes on blind base-versus-tuned pairs, as figures: each vote is one paired outcome
 * (tuned preferred, base preferred, or the same), so the win rate and its interval are the
 * paired comparison's own, with the vote as the unit of resampling.
 */
import { bootstrapInterval, winRate, type BootstrapOptions, type Pair } from './stats.js';

/** What a vote says once its sides are resolved: which generator the person preferred, or neither. */
export type HumanChoice = 'tuned' | 'base' | 'same';

export const HUMAN_CHOICES: readonly HumanChoice[] = ['tuned', 'base', 'same'];

export interface HumanFigures {
  readonly votes: number;
  readonly tuned: number;
  readonly base: number;
  readonly same: number;
  /** (tuned + 0.5 · same) / votes. */
  readonly winRate: number;
  readonly winRateInterval: readonly [number, number];
}

/** A vote as a paired outcome: 'same' is a tie, which the paired win rate counts as half a win. */
function asPair(choice: HumanChoice, index: number): Pair {
  // Each vote is its own group, so the bootstrap resamples votes.
  return { prompt: String(index), seed: index, base: choice === 'base' ? 1 : 0, tuned: choice === 'tuned' ? 1 : 0 };
}

/** The human win rate of the tuned generator with its bootstrap interval; null before the first vote. */
export function humanFigures(choices: readonly HumanChoice[], options: BootstrapOptions = {}): HumanFigures | null {
  if (choices.length === 0) return null;
  const pairs = choices.map(asPair);
  const count = (c: HumanChoice) => choices.filter((x) => x === c).length;
  const [lo, hi] = bootstrapInterval(pairs, winRate, options);
  return { votes: choices.length, tuned: count('tuned'), base: count('base'), same: count('same'), winRate: winRate(pairs), winRateInterval: [lo, hi] };
}
