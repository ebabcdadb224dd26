/**
 * The promotion gate: when a tuned generator is measurably better than the one it was sampled
 * from (its parent: a model line's champion). Its settings' schema and the verdict, a pure
 * function of the evaluation's figures; rounds report it, model lines promote by it.
 */
import { number, object, type Schema } from './schema.js';

export interface GateSettings {
  /** The low end of the paired CLIP win rate's 95% interval against the parent must be above this. */
  readonly minWinRateLow: number;
  /** Detector class accuracy may fall below the parent's by at most this (0: not at all). */
  readonly maxAccuracyDrop: number;
}

export const GATE_SCHEMA: Schema<GateSettings> = object<GateSettings>(
  {
    minWinRateLow: number({
      min: 0,
      max: 1,
      default: 0.5,
      meaning: "the paired CLIP win rate's 95% interval against the parent must start above this (0.5: better beyond noise)",
    }),
    maxAccuracyDrop: number({ min: 0, max: 1, default: 0, meaning: "detector class accuracy may fall below the parent's by at most this" }),
  },
  { meaning: 'the promotion gate' },
);

/** What the gate reads of a comparison against the parent (the evaluation's `Comparison`). */
export interface GateFigures {
  readonly pairs: number;
  readonly winRate: number;
  readonly winRateInterval: readonly [number, number];
  /** The parent's detector accuracy. */
  readonly accuracyBase: number;
  readonly accuracyTuned: number;
}

export interface GateVerdict {
  readonly passed: boolean;
  /** Why, one sentence per rule, each with the figures it read. */
  readonly reasons: readonly string[];
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * The verdict on a tuned generator against its parent: passed only when every rule holds, with
 * one reason per rule either way, so a rejected night says exactly what it missed.
 */
export function gateVerdict(gate: GateSettings, againstParent: GateFigures, parentName: string): GateVerdict {
  const [low, high] = againstParent.winRateInterval;
  const winHolds = low > gate.minWinRateLow;
  const drop = againstParent.accuracyBase - againstParent.accuracyTuned;
  const accuracyHolds = drop <= gate.maxAccuracyDrop + 1e-12;
  return {
    passed: winHolds && accuracyHolds,
    reasons: [
      `win rate against ${parentName} ${percent(againstParent.winRate)} [${percent(low)}, ${percent(high)}] over ${againstParent.pairs} pairs: ` +
        (winHolds ? `its interval starts above ${percent(gate.minWinRateLow)}` : `its interval does not start above ${percent(gate.minWinRateLow)}`),
      `detector accuracy ${percent(againstParent.accuracyTuned)} against ${parentName}'s ${percent(againstParent.accuracyBase)}: ` +
        (accuracyHolds
          ? `within the allowed drop of ${percent(gate.maxAccuracyDrop)}`
          : `a drop of ${percent(drop)}, more than the allowed ${percent(gate.maxAccuracyDrop)}`),
    ],
  };
}
