/**
 * The promotion gate: when a tuned generator is measurably better than the one it was sampled
 * from (its parent: a model line's champion). Its settings' schema and the verdict, a pure
 * function of the evaluation's figures; rounds report it, model lines promote by it.
 */
import { boolean, nullable, number, object, type Schema } from './schema.js';

export interface GateSettings {
  /** The low end of the paired CLIP win rate's 95% interval against the parent must be above this. */
  readonly minWinRateLow: number;
  /** Detector class accuracy may fall below the parent's by at most this (0: not at all). */
  readonly maxAccuracyDrop: number;
  /**
   * The tuned generator's diversity may fall below the parent's by at most this fraction (0.05:
   * 5%); null: not checked. Diversity needs two or more held-out seeds per prompt.
   */
  readonly maxDiversityLoss: number | null;
  /**
   * The referee's object-present share may fall below the parent's by at most this; null: not
   * checked. Needs `evaluation.referee`.
   */
  readonly maxRefereeDrop: number | null;
  /** Refuse a tuned generator when the referee's hacking check against the parent flags a class. Needs `evaluation.referee`. */
  readonly refuseHacking: boolean;
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
    maxDiversityLoss: nullable(number({ min: 0, max: 1, meaning: 'a fraction of the diversity' }), {
      type: 'number in [0, 1] or null',
      meaning:
        "the tuned generator's image diversity (mean pairwise CLIP distance across a held-out prompt's seeds) may fall below the parent's by at most this fraction (0.05: 5%); null: not checked. Needs `evaluation.seedsPerPrompt` ≥ 2",
    }),
    maxRefereeDrop: nullable(number({ min: 0, max: 1, meaning: 'a share of the held-out images' }), {
      type: 'number in [0, 1] or null',
      meaning:
        "the share of held-out images in which the referee finds the prompt's object may fall below the parent's by at most this (0: not at all); null: not checked. Needs `evaluation.referee`",
    }),
    refuseHacking: boolean({
      default: false,
      meaning:
        "refuse a tuned generator when the referee's hacking check against the parent flags a class (images the curation judge accepts and the referee rejects rose beyond noise). Needs `evaluation.referee`",
    }),
  },
  { meaning: 'the promotion gate' },
);

/**
 * What a gate's rules need of the evaluation that a round input does not give (the field and what
 * it expects), or null: a diversity bound needs two or more seeds per held-out prompt, and the
 * referee's rules need a referee.
 */
export function gateRefusal(
  gate: GateSettings | null,
  evaluation: { readonly seedsPerPrompt: number; readonly referee: unknown },
): { readonly field: string; readonly expected: string } | null {
  if (gate === null) return null;
  if (gate.maxDiversityLoss !== null && evaluation.seedsPerPrompt < 2)
    return {
      field: 'gate.maxDiversityLoss',
      expected: `null, or \`evaluation.seedsPerPrompt\` of 2 or more (diversity compares a held-out prompt's images with each other; it is ${evaluation.seedsPerPrompt})`,
    };
  const needsReferee = gate.maxRefereeDrop !== null ? 'gate.maxRefereeDrop' : gate.refuseHacking ? 'gate.refuseHacking' : null;
  if (needsReferee !== null && evaluation.referee === null)
    return { field: needsReferee, expected: `${gate.maxRefereeDrop !== null ? 'null' : 'false'}, or an \`evaluation.referee\` (the rule reads its figures)` };
  return null;
}

/** What the gate reads of a comparison against the parent (the evaluation's `Comparison`). */
export interface GateFigures {
  readonly pairs: number;
  readonly winRate: number;
  readonly winRateInterval: readonly [number, number];
  /** The parent's detector accuracy. */
  readonly accuracyBase: number;
  readonly accuracyTuned: number;
  /** The parent's diversity and the tuned generator's (null when not measured). */
  readonly diversityBase: number | null;
  readonly diversityTuned: number | null;
  readonly diversityChange: number | null;
  /** The referee's figures against the parent (null without a referee). */
  readonly referee: {
    readonly objectPresent: { readonly base: number; readonly tuned: number };
    readonly flaggedClasses: readonly string[];
  } | null;
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
  const optional = [
    gate.maxDiversityLoss === null ? null : diversityRule(gate.maxDiversityLoss, againstParent, parentName),
    gate.maxRefereeDrop === null ? null : refereeRule(gate.maxRefereeDrop, againstParent, parentName),
    gate.refuseHacking ? hackingRule(againstParent, parentName) : null,
  ].filter((rule) => rule !== null);
  return {
    passed: winHolds && accuracyHolds && optional.every((rule) => rule.holds),
    reasons: [
      `win rate against ${parentName} ${percent(againstParent.winRate)} [${percent(low)}, ${percent(high)}] over ${againstParent.pairs} pairs: ` +
        (winHolds ? `its interval starts above ${percent(gate.minWinRateLow)}` : `its interval does not start above ${percent(gate.minWinRateLow)}`),
      `detector accuracy ${percent(againstParent.accuracyTuned)} against ${parentName}'s ${percent(againstParent.accuracyBase)}: ` +
        (accuracyHolds
          ? `within the allowed drop of ${percent(gate.maxAccuracyDrop)}`
          : `a drop of ${percent(drop)}, more than the allowed ${percent(gate.maxAccuracyDrop)}`),
      ...optional.map((rule) => rule.reason),
    ],
  };
}

/** The diversity rule: a loss of at most `maxLoss` of the parent's diversity; unmeasured diversity does not pass a rule that asks for it. */
function diversityRule(maxLoss: number, f: GateFigures, parentName: string): { holds: boolean; reason: string } {
  const { diversityBase: base, diversityTuned: tuned, diversityChange: change } = f;
  if (base === null || tuned === null || change === null)
    return {
      holds: false,
      reason: `diversity against ${parentName}: not measured (it needs two or more held-out seeds per prompt), so its bound of ${percent(maxLoss)} cannot hold`,
    };
  const loss = -change;
  const holds = loss <= maxLoss + 1e-12;
  const head = `diversity ${base.toFixed(4)} -> ${tuned.toFixed(4)} against ${parentName}'s: `;
  return {
    holds,
    reason:
      head +
      (loss <= 0
        ? `no loss (${percent(change)})`
        : holds
          ? `a loss of ${percent(loss)}, within the allowed ${percent(maxLoss)}`
          : `a loss of ${percent(loss)}, more than the allowed ${percent(maxLoss)}`),
  };
}

const REFEREE_UNMEASURED = '(it needs `evaluation.referee`)';

/** The referee's object-present share may fall by at most `maxDrop`; without the referee's figures the rule cannot hold. */
function refereeRule(maxDrop: number, f: GateFigures, parentName: string): { holds: boolean; reason: string } {
  if (f.referee === null) return { holds: false, reason: `referee against ${parentName}: not measured ${REFEREE_UNMEASURED}, so its bound cannot hold` };
  const { base, tuned } = f.referee.objectPresent;
  const drop = base - tuned;
  const holds = drop <= maxDrop + 1e-12;
  return {
    holds,
    reason:
      `referee object present ${percent(tuned)} against ${parentName}'s ${percent(base)}: ` +
      (holds ? `within the allowed drop of ${percent(maxDrop)}` : `a drop of ${percent(drop)}, more than the allowed ${percent(maxDrop)}`),
  };
}

/** No class may be flagged by the referee's hacking check; without the referee's figures the rule cannot hold. */
function hackingRule(f: GateFigures, parentName: string): { holds: boolean; reason: string } {
  if (f.referee === null) return { holds: false, reason: `hacking check against ${parentName}: not measured ${REFEREE_UNMEASURED}, so it cannot pass` };
  const flagged = f.referee.flaggedClasses;
  return flagged.length === 0
    ? { holds: true, reason: `hacking check against ${parentName}: no class flagged` }
    : {
        holds: false,
        reason: `hacking check against ${parentName} flags ${flagged.join(', ')}: the curation judge accepts more of their images that the referee rejects, beyond noise`,
      };
}
