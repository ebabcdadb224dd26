/** Which held-out pairs the report shows: verdict changes per class, and the grid spread over classes. */
import { describe, expect, it } from 'vitest';

import type { EvaluationRecord } from '../contract/records.js';
import { evaluationFigures } from './evaluate.js';
import { heldOutPairs, spreadPairs, verdictChange, verdictChanges, type HeldOutPair } from './reportPairs.js';

/** A held-out prompt whose seed s has detection confidences base[s] and tuned[s]. */
function record(promptIndex: number, className: string, base: number[], tuned: number[]): EvaluationRecord {
  return {
    promptIndex,
    className,
    text: `prompt ${promptIndex}`,
    seeds: base.map((_, s) => 100 * promptIndex + s),
    base: base.map((detection, s) => ({ key: `b${promptIndex}-${s}`, clip: 20, detection })),
    parent: null,
    tuned: tuned.map((detection, s) => ({ key: `t${promptIndex}-${s}`, clip: 21, detection })),
  };
}

const pair = (base: number, tuned: number): HeldOutPair => heldOutPairs([record(0, 'c', [base], [tuned])])[0]!;
const ids = (pairs: readonly HeldOutPair[]) => pairs.map((p) => `${p.className}:${p.promptIndex}/${p.seed}`);

describe('verdict changes', () => {
  it("call a pair fixed, regressed, right or wrong by the judge's threshold, which counts as detected", () => {
    expect(verdictChange(pair(0.2, 0.7), 0.5)).toBe('fix');
    expect(verdictChange(pair(0.7, 0.2), 0.5)).toBe('regression');
    expect(verdictChange(pair(0.5, 0.9), 0.5)).toBe('right');
    expect(verdictChange(pair(0.1, 0.49), 0.5)).toBe('wrong');
    expect(verdictChange(pair(0.49, 0.5), 0.5)).toBe('fix');
  });

  it('count each class by name and list its fixes and regressions, largest confidence change first', () => {
    const records = [record(0, 'square', [0.1, 0.9], [0.9, 0.8]), record(1, 'circle', [0.1, 0.4, 0.9], [0.6, 0.95, 0.2]), record(2, 'circle', [0.2], [0.1])];
    const changes = verdictChanges(records, 0.5);
    expect(changes.map((c) => c.className)).toEqual(['circle', 'square']);
    const [circle, square] = changes;
    expect(ids(circle!.fixes)).toEqual(['circle:1/101', 'circle:1/100']);
    expect(ids(circle!.regressions)).toEqual(['circle:1/102']);
    expect([circle!.unchangedRight, circle!.unchangedWrong]).toEqual([0, 1]);
    expect(ids(square!.fixes)).toEqual(['square:0/0']);
    expect([square!.regressions.length, square!.unchangedRight, square!.unchangedWrong]).toEqual([0, 1, 0]);
  });

  it("agree with the evaluation's per-class detector accuracy", () => {
    const records = [record(0, 'a', [0.1, 0.6, 0.7], [0.8, 0.3, 0.9]), record(1, 'b', [0.2, 0.2], [0.1, 0.9]), record(2, 'a', [0.6], [0.1])];
    const { perClass } = evaluationFigures(records, 0.5, 10);
    for (const c of verdictChanges(records, 0.5)) {
      const pairs = c.fixes.length + c.regressions.length + c.unchangedRight + c.unchangedWrong;
      expect(perClass[c.className]).toEqual({
        pairs,
        base: (c.regressions.length + c.unchangedRight) / pairs,
        tuned: (c.fixes.length + c.unchangedRight) / pairs,
      });
    }
  });

  it("follow the referee's object-present check when asked, ranking by its confidence change", () => {
    const verdict = (present: boolean, presence: number) => ({
      presence,
      present,
      instances: Number(present),
      countCorrect: null,
      colour: null,
      colourCorrect: null,
      background: null,
      backgroundCorrect: null,
      allCorrect: present,
      judgeAccepted: true,
    });
    // The judge sees three fixes; the referee sees one fix, one regression, one pair right on both sides.
    const judged = record(0, 'circle', [0.1, 0.1, 0.1], [0.9, 0.9, 0.9]);
    const refereed: EvaluationRecord = {
      ...judged,
      referee: {
        colour: null,
        background: null,
        base: [verdict(false, 0.1), verdict(true, 0.9), verdict(true, 0.5)],
        parent: null,
        tuned: [verdict(true, 0.6), verdict(false, 0.2), verdict(true, 0.7)],
      },
    };
    expect(verdictChanges([refereed], 0.5)[0]!.fixes).toHaveLength(3);
    const [circle] = verdictChanges([refereed], 'referee');
    expect(ids(circle!.fixes)).toEqual(['circle:0/0']);
    expect(ids(circle!.regressions)).toEqual(['circle:0/1']);
    expect([circle!.unchangedRight, circle!.unchangedWrong]).toEqual([1, 0]);
    // A record without the referee's verdicts has nothing the referee found.
    expect(verdictChanges([judged], 'referee')[0]!.unchangedWrong).toBe(3);
  });

  it('skip a seed whose images are not both recorded', () => {
    const partial: EvaluationRecord = { ...record(0, 'a', [0.1, 0.1], [0.9, 0.9]), tuned: record(0, 'a', [0.1], [0.9]).tuned };
    expect(verdictChanges([partial], 0.5)[0]!.fixes).toHaveLength(1);
  });
});

describe('the base-versus-tuned grid', () => {
  // Class a has prompts 0, 2 and 4, class b prompt 1, class c prompt 3; two seeds each.
  const records = [0, 1, 2, 3, 4].map((i) => record(i, i % 2 === 0 ? 'a' : i === 1 ? 'b' : 'c', [0.1, 0.2], [0.3, 0.4]));

  it('takes pairs round-robin over the classes, each prompt once before any prompt twice', () => {
    expect(ids(spreadPairs(records, 6))).toEqual(['a:0/0', 'b:1/100', 'c:3/300', 'a:2/200', 'b:1/101', 'c:3/301']);
    expect(ids(spreadPairs(records, 10)).slice(6)).toEqual(['a:4/400', 'a:0/1', 'a:2/201', 'a:4/401']);
  });

  it('is the same whatever order the records come in, and stops when the pairs run out', () => {
    expect(spreadPairs([...records].reverse(), 7)).toEqual(spreadPairs(records, 7));
    expect(spreadPairs(records, 100)).toHaveLength(10);
    expect(spreadPairs([], 8)).toEqual([]);
    expect(spreadPairs(records, 0)).toEqual([]);
  });
});
