import { describe, expect, it } from 'vitest';

import type { EvaluationRecord, RefereeScore } from '../contract/records.js';
import { refereeFigures } from './refereeFigures.js';

/** A referee score: present or not, accepted by the judge or not, and the applicable checks' answers. */
function v(present: boolean, judgeAccepted: boolean, checks: { count?: boolean | null; colour?: boolean | null } = {}): RefereeScore {
  const countCorrect = checks.count ?? null;
  const colourCorrect = checks.colour ?? null;
  return {
    presence: present ? 0.8 : 0.1,
    present,
    instances: present ? 1 : 0,
    countCorrect,
    colour: null,
    colourCorrect,
    background: null,
    backgroundCorrect: null,
    allCorrect: present && countCorrect !== false && colourCorrect !== false,
    judgeAccepted,
  };
}

function record(promptIndex: number, className: string, base: RefereeScore[], tuned: RefereeScore[], parent: RefereeScore[] | null = null): EvaluationRecord {
  const score = (side: string) => base.map((_, s) => ({ key: `${side}-${promptIndex}-${s}`, clip: 20, detection: 0.5 }));
  return {
    promptIndex,
    className,
    text: `prompt ${promptIndex}`,
    seeds: base.map((_, s) => s),
    base: score('base'),
    parent: parent === null ? null : score('parent'),
    tuned: score('tuned'),
    referee: { colour: null, background: null, base, parent, tuned },
  };
}

describe('refereeFigures', () => {
  it('gives the GenEval-style shares per image and per prompt, leaving out checks a prompt does not ask for', () => {
    const records = [
      record(
        0,
        'circle',
        [v(true, true, { count: true }), v(false, false, { count: false })],
        [v(true, true, { count: true }), v(true, true, { count: true })],
      ),
      record(
        1,
        'square',
        [v(true, true, { colour: true }), v(true, true, { colour: false })],
        [v(true, true, { colour: true }), v(true, true, { colour: true })],
      ),
    ];
    const f = refereeFigures(records, 'base', 200)!;
    expect(f.objectPresent).toMatchObject({ n: 4, base: 0.75, tuned: 1, gain: 0.25 });
    // Counting applies to prompt 0's images only, colour to prompt 1's only; background to none.
    expect(f.counting).toMatchObject({ n: 2, base: 0.5, tuned: 1 });
    expect(f.colour).toMatchObject({ n: 2, base: 0.5, tuned: 1 });
    expect(f.background).toBeNull();
    expect(f.allCorrectImages).toMatchObject({ n: 4, base: 0.5, tuned: 1 });
    // A prompt is all-correct when every seed's image is: neither base prompt is, both tuned are.
    expect(f.allCorrectPrompts).toMatchObject({ n: 2, base: 0, tuned: 1, gain: 1 });
    expect(f.judgeAccepted).toMatchObject({ base: 0.75, tuned: 1 });
    for (const s of [f.objectPresent, f.allCorrectPrompts]) {
      expect(s.gainInterval[0]).toBeLessThanOrEqual(s.gain);
      expect(s.gainInterval[1]).toBeGreaterThanOrEqual(s.gain);
    }
  });

  it('flags a class whose accepted-but-absent share rose beyond noise, and not one whose rise is noise', () => {
    // Circle: every tuned image is accepted by the judge and missed by the referee, on every prompt.
    const circles = [0, 1, 2, 3].map((i) => record(i, 'circle', [v(true, true), v(true, true)], [v(false, true), v(false, true)]));
    // Square: one prompt of four rose, one fell.
    const squares = [4, 5, 6, 7].map((i) =>
      record(i, 'square', [i === 5 ? v(false, true) : v(true, true), v(true, true)], [i === 4 ? v(false, true) : v(true, true), v(true, true)]),
    );
    const f = refereeFigures([...circles, ...squares], 'base', 500)!;
    expect(f.hacking['circle']).toMatchObject({
      images: 8,
      base: 0,
      tuned: 1,
      change: 1,
      changeInterval: [1, 1],
      flagged: true,
      judgeGain: 0,
      refereeGain: -1,
    });
    expect(f.hacking['square']).toMatchObject({ images: 8, change: 0, flagged: false });
    expect(f.hacking['square']!.changeInterval[0]).toBeLessThan(0);
    expect(f.flaggedClasses).toEqual(['circle']);
  });

  it('is null without the verdicts (no referee, or records of earlier versions) and for a parent the records lack', () => {
    const full = record(0, 'circle', [v(true, true)], [v(true, true)]);
    const { referee: _, ...older } = full;
    expect(refereeFigures([full, { ...older, promptIndex: 1 }], 'base', 100)).toBeNull();
    expect(refereeFigures([{ ...full, referee: null }], 'base', 100)).toBeNull();
    expect(refereeFigures([full], 'parent', 100)).toBeNull();
    expect(refereeFigures([record(0, 'circle', [v(true, true)], [v(false, true)], [v(false, false)])], 'parent', 100)?.objectPresent).toMatchObject({
      base: 0,
      tuned: 0,
    });
    expect(refereeFigures([], 'base', 100)).toBeNull();
  });
});
