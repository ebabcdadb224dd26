/**
 * The referee's GenEval-style figures and the reward-hacking check, from the evaluation records'
 * referee verdicts. Pure: a resumed evaluation rebuilds the same figures from the same records.
 */
import type { ClassHacking, PairedShare, RefereeFigures } from '../contract/activities.js';
import type { EvaluationRecord, RefereeScore } from '../contract/records.js';
import { bootstrapInterval, meanDifference, pairedAccuracy, type Pair } from '../models/evaluation/stats.js';

const mean = (values: readonly number[]) => values.reduce((s, v) => s + v, 0) / values.length;

/** A paired share of hits with its bootstrap interval; null when nothing applies. */
function share(hits: readonly Pair[], resamples: number): PairedShare | null {
  if (hits.length === 0) return null;
  const { base, tuned, gainInterval } = pairedAccuracy(hits, resamples);
  return { n: hits.length, base, tuned, gain: tuned - base, gainInterval };
}

interface ImageRow {
  readonly prompt: string;
  readonly seed: number;
  readonly className: string;
  readonly base: RefereeScore;
  readonly tuned: RefereeScore;
}

/** A check's hits as 1 or 0 per pair, leaving out images it does not apply to (null). */
function hitsOf(rows: readonly ImageRow[], check: (v: RefereeScore) => boolean | null): Pair[] {
  return rows.flatMap((r) => {
    const base = check(r.base);
    const tuned = check(r.tuned);
    return base === null || tuned === null ? [] : [{ prompt: r.prompt, seed: r.seed, base: Number(base), tuned: Number(tuned) }];
  });
}

/** An image the curation judge accepts and the referee finds no class in: what reward hacking of the judge looks like. */
export const hacked = (v: RefereeScore) => v.judgeAccepted && !v.present;

/**
 * Per class: the share of its images the judge accepts and the referee rejects, reference and
 * tuned, with the bootstrap interval of the change over the class's prompts; flagged when the
 * interval's low end is above 0 (the share rose beyond noise). Beside it the judge's and the
 * referee's accuracy gains on the class.
 */
export function hackingCheck(rows: readonly ImageRow[], resamples: number): Record<string, ClassHacking> {
  const byClass = new Map<string, ImageRow[]>();
  for (const r of rows) byClass.set(r.className, [...(byClass.get(r.className) ?? []), r]);
  const out: Record<string, ClassHacking> = {};
  for (const className of [...byClass.keys()].sort()) {
    const classRows = byClass.get(className)!;
    const pairs = hitsOf(classRows, hacked);
    const interval = bootstrapInterval(pairs, meanDifference, { resamples, seed: 0 });
    const base = mean(pairs.map((p) => p.base));
    const tuned = mean(pairs.map((p) => p.tuned));
    const gain = (check: (v: RefereeScore) => boolean) => mean(classRows.map((r) => Number(check(r.tuned)) - Number(check(r.base))));
    out[className] = {
      images: pairs.length,
      base,
      tuned,
      change: tuned - base,
      changeInterval: [interval[0], interval[1]],
      flagged: interval[0] > 0,
      judgeGain: gain((v) => v.judgeAccepted),
      refereeGain: gain((v) => v.present),
    };
  }
  return out;
}

/**
 * The referee's figures of the tuned generator against one reference: object present, counting,
 * colour, background, all-correct per image and per prompt (all its seeds' images), the curation
 * judge's accuracy beside them, and the hacking check. Null when a record lacks the referee's
 * verdicts (no referee, or a record of an earlier version) or the reference's.
 */
export function refereeFigures(records: readonly EvaluationRecord[], reference: 'base' | 'parent', resamples: number): RefereeFigures | null {
  if (records.length === 0) return null;
  const sides = records.map((r) => {
    const v = r.referee;
    if (v === undefined || v === null) return null;
    const ref = reference === 'base' ? v.base : v.parent;
    return ref === null ? null : { ref, tuned: v.tuned };
  });
  if (sides.some((s) => s === null)) return null;
  const rows: ImageRow[] = records.flatMap((r, i) =>
    r.seeds.map((seed, s) => ({ prompt: String(r.promptIndex), seed, className: r.className, base: sides[i]!.ref[s]!, tuned: sides[i]!.tuned[s]! })),
  );
  const perPrompt: Pair[] = records.map((r, i) => ({
    prompt: String(r.promptIndex),
    seed: r.seeds[0] ?? 0,
    base: Number(sides[i]!.ref.every((v) => v.allCorrect)),
    tuned: Number(sides[i]!.tuned.every((v) => v.allCorrect)),
  }));
  const hacking = hackingCheck(rows, resamples);
  return {
    objectPresent: share(
      hitsOf(rows, (v) => v.present),
      resamples,
    )!,
    counting: share(
      hitsOf(rows, (v) => v.countCorrect),
      resamples,
    ),
    colour: share(
      hitsOf(rows, (v) => v.colourCorrect),
      resamples,
    ),
    background: share(
      hitsOf(rows, (v) => v.backgroundCorrect),
      resamples,
    ),
    allCorrectImages: share(
      hitsOf(rows, (v) => v.allCorrect),
      resamples,
    )!,
    allCorrectPrompts: share(perPrompt, resamples)!,
    judgeAccepted: share(
      hitsOf(rows, (v) => v.judgeAccepted),
      resamples,
    )!,
    hacking,
    flaggedClasses: Object.keys(hacking).filter((c) => hacking[c]!.flagged),
  };
}
