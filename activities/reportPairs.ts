/**
 * Which held-out pairs the report shows: per class, the pairs whose detector verdict the round
 * flipped (fixes and regressions), and a base-versus-tuned grid spread over the classes. Pure.
 */
import type { EvaluationRecord, EvaluationScore } from '../contract/records.js';

/** One held-out pair: a prompt's base and tuned images drawn from the same seed. */
export interface HeldOutPair {
  readonly promptIndex: number;
  readonly className: string;
  readonly text: string;
  readonly seed: number;
  readonly base: EvaluationScore;
  readonly tuned: EvaluationScore;
}

/** The detector's verdict on a pair: wrong on base and right on tuned is a fix, the reverse a regression. */
export type VerdictChange = 'fix' | 'regression' | 'right' | 'wrong';

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
        return base === undefined || tuned === undefined ? [] : [{ promptIndex: r.promptIndex, className: r.className, text: r.text, seed, base, tuned }];
      }),
    );
}

/** Detected at or above the judge's threshold: the same rule as the evaluation's detector accuracy. */
export function verdictChange(pair: HeldOutPair, threshold: number): VerdictChange {
  const base = pair.base.detection >= threshold;
  const tuned = pair.tuned.detection >= threshold;
  if (base === tuned) return base ? 'right' : 'wrong';
  return tuned ? 'fix' : 'regression';
}

const byChange = (a: HeldOutPair, b: HeldOutPair) =>
  Math.abs(b.tuned.detection - b.base.detection) - Math.abs(a.tuned.detection - a.base.detection) || a.promptIndex - b.promptIndex || a.seed - b.seed;

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Per class (by name), the pairs the round fixed and broke and how many it left right or wrong. */
export function verdictChanges(records: readonly EvaluationRecord[], threshold: number): ClassVerdictChanges[] {
  const classes = new Map<string, { fixes: HeldOutPair[]; regressions: HeldOutPair[]; right: number; wrong: number }>();
  for (const pair of heldOutPairs(records)) {
    let c = classes.get(pair.className);
    if (c === undefined) classes.set(pair.className, (c = { fixes: [], regressions: [], right: 0, wrong: 0 }));
    const change = verdictChange(pair, threshold);
    if (change === 'fix') c.fixes.push(pair);
    else if (change === 'regression') c.regressions.push(pair);
    else c[change] += 1;
  }
  return [...classes.entries()]
    .sort(([a], [b]) => byName(a, b))
    .map(([className, c]) => ({
      className,
      fixes: c.fixes.sort(byChange),
      regressions: c.regressions.sort(byChange),
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
