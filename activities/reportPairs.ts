/**
 * Which held-out pairs the report shows: per class, the pairs whose verdict the round flipped
 * (fixes and regressions: the curation judge's detector, or the referee's when the round has one),
 * and a base-versus-tuned grid spread over the classes. Pure.
 */
import type { EvaluationRecord, EvaluationScore, RefereeScore } from '../contract/records.js';

/** One held-out pair: a prompt's base and tuned images drawn from the same seed. */
export interface HeldOutPair {
  readonly promptIndex: number;
  readonly className: string;
  readonly text: string;
  readonly seed: number;
  readonly base: EvaluationScore;
  readonly tuned: EvaluationScore;
  /** The referee's verdicts on the two images; null when the record has none. */
  readonly referee: { readonly base: RefereeScore; readonly tuned: RefereeScore } | null;
}

/** The verdict on a pair: wrong on base and right on tuned is a fix, the reverse a regression. */
export type VerdictChange = 'fix' | 'regression' | 'right' | 'wrong';

/**
 * Whose verdict: a number is the curation judge's threshold (its detector's confidence at or above
 * it); `referee` is the referee's object-present check, which no training image was chosen by.
 */
export type VerdictSource = number | 'referee';

/** Whether the class was found in one side's image, and how confidently, by `source`. */
function verdictOf(pair: HeldOutPair, side: 'base' | 'tuned', source: VerdictSource): { found: boolean; confidence: number } {
  if (source === 'referee') {
    const v = pair.referee?.[side];
    return { found: v?.present ?? false, confidence: v?.presence ?? 0 };
  }
  return { found: pair[side].detection >= source, confidence: pair[side].detection };
}

export interface ClassVerdictChanges {
  readonly className: string;
  /** Largest confidence change first, so the clearest examples lead. */
  readonly fixes: readonly HeldOutPair[];
  readonly regressions: readonly HeldOutPair[];
  /** Pairs the detector finds the class in, on both sides. */
  readonly unchangedRight: number;
  /** Pairs the detector finds the class in on neither side. */
  readonly unchangedWrong: number;
}

/** Every pair whose base and tuned images are both recorded, in prompt then seed order. */
export function heldOutPairs(records: readonly EvaluationRecord[]): HeldOutPair[] {
  return [...records]
    .sort((a, b) => a.promptIndex - b.promptIndex)
    .flatMap((r) =>
      r.seeds.flatMap((seed, s) => {
        const base = r.base[s];
        const tuned = r.tuned[s];
        const refereeBase = r.referee?.base[s];
        const refereeTuned = r.referee?.tuned[s];
        const referee = refereeBase === undefined || refereeTuned === undefined ? null : { base: refereeBase, tuned: refereeTuned };
        return base === undefined || tuned === undefined
          ? []
          : [{ promptIndex: r.promptIndex, className: r.className, text: r.text, seed, base, tuned, referee }];
      }),
    );
}

/** Found by `source` on each side: with the judge, detected at or above its threshold (the evaluation's detector accuracy). */
export function verdictChange(pair: HeldOutPair, source: VerdictSource): VerdictChange {
  const base = verdictOf(pair, 'base', source).found;
  const tuned = verdictOf(pair, 'tuned', source).found;
  if (base === tuned) return base ? 'right' : 'wrong';
  return tuned ? 'fix' : 'regression';
}

const confidenceChange = (p: HeldOutPair, source: VerdictSource) =>
  Math.abs(verdictOf(p, 'tuned', source).confidence - verdictOf(p, 'base', source).confidence);
const byChange = (source: VerdictSource) => (a: HeldOutPair, b: HeldOutPair) =>
  confidenceChange(b, source) - confidenceChange(a, source) || a.promptIndex - b.promptIndex || a.seed - b.seed;

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Per class (by name), the pairs the round fixed and broke in `source`'s eyes, and how many it left right or wrong. */
export function verdictChanges(records: readonly EvaluationRecord[], source: VerdictSource): ClassVerdictChanges[] {
  const classes = new Map<string, { fixes: HeldOutPair[]; regressions: HeldOutPair[]; right: number; wrong: number }>();
  for (const pair of heldOutPairs(records)) {
    let c = classes.get(pair.className);
    if (c === undefined) classes.set(pair.className, (c = { fixes: [], regressions: [], right: 0, wrong: 0 }));
    const change = verdictChange(pair, source);
    if (change === 'fix') c.fixes.push(pair);
    else if (change === 'regression') c.regressions.push(pair);
    else c[change] += 1;
  }
  return [...classes.entries()]
    .sort(([a], [b]) => byName(a, b))
    .map(([className, c]) => ({
      className,
      fixes: c.fixes.sort(byChange(source)),
      regressions: c.regressions.sort(byChange(source)),
      unchangedRight: c.right,
      unchangedWrong: c.wrong,
    }));
}

/**
 * Up to `count` pairs taken in turn from each class (classes by name), so every class shows
 * before any shows twice. Within a class, each prompt's first seed comes before any prompt's
 * second, so the grid shows as many prompts as it can.
 */
export function spreadPairs(records: readonly EvaluationRecord[], count: number): HeldOutPair[] {
  const seedIndex = new Map<HeldOutPair, number>();
  const queues = new Map<string, HeldOutPair[]>();
  const seen = new Map<number, number>();
  for (const pair of heldOutPairs(records)) {
    const s = seen.get(pair.promptIndex) ?? 0;
    seen.set(pair.promptIndex, s + 1);
    seedIndex.set(pair, s);
    const queue = queues.get(pair.className) ?? [];
    queue.push(pair);
    queues.set(pair.className, queue);
  }
  const ordered = [...queues.entries()]
    .sort(([a], [b]) => byName(a, b))
    .map(([, queue]) => queue.sort((a, b) => seedIndex.get(a)! - seedIndex.get(b)! || a.promptIndex - b.promptIndex));
  const picked: HeldOutPair[] = [];
  for (let turn = 0; picked.length < count && ordered.some((q) => turn < q.length); turn++) {
    for (const queue of ordered) {
      const pair = queue[turn];
      if (pair !== undefined && picked.length < count) picked.push(pair);
    }
  }
  return picked;
}
