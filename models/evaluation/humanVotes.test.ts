import { describe, expect, it } from 'vitest';

import { humanFigures, type HumanChoice } from './humanVotes.js';

const votes = (tuned: number, base: number, same: number): HumanChoice[] => [
  ...Array<HumanChoice>(tuned).fill('tuned'),
  ...Array<HumanChoice>(base).fill('base'),
  ...Array<HumanChoice>(same).fill('same'),
];

describe('human figures', () => {
  it('have none before the first vote', () => {
    expect(humanFigures([])).toBeNull();
  });

  it('count tuned wins plus half of the votes for neither, over all votes', () => {
    const figures = humanFigures(votes(5, 2, 3));
    expect(figures).toMatchObject({ votes: 10, tuned: 5, base: 2, same: 3, winRate: (5 + 0.5 * 3) / 10 });
  });

  it('put a tie between the two sides at one half, and all-same there too', () => {
    expect(humanFigures(votes(4, 4, 0))?.winRate).toBe(0.5);
    expect(humanFigures(votes(0, 0, 6))?.winRate).toBe(0.5);
    // Nothing varies when every vote says the same thing: the interval is the point.
    expect(humanFigures(votes(0, 0, 6))?.winRateInterval).toEqual([0.5, 0.5]);
    expect(humanFigures(votes(3, 0, 0))).toMatchObject({ winRate: 1, winRateInterval: [1, 1] });
    expect(humanFigures(votes(0, 3, 0))).toMatchObject({ winRate: 0, winRateInterval: [0, 0] });
  });

  it('resample votes: the interval holds the estimate, narrows with more votes and is reproducible', () => {
    const few = humanFigures(votes(6, 3, 1))!;
    const many = humanFigures(votes(60, 30, 10))!;
    expect(few.winRate).toBe(many.winRate);
    for (const f of [few, many]) {
      expect(f.winRateInterval[0]).toBeLessThan(f.winRate);
      expect(f.winRateInterval[1]).toBeGreaterThan(f.winRate);
      expect(f.winRateInterval[0]).toBeGreaterThanOrEqual(0);
      expect(f.winRateInterval[1]).toBeLessThanOrEqual(1);
    }
    expect(many.winRateInterval[1] - many.winRateInterval[0]).toBeLessThan(few.winRateInterval[1] - few.winRateInterval[0]);
    expect(humanFigures(votes(6, 3, 1))).toEqual(few);
    // 100 votes at p = 0.65: the normal approximation's 95% half-width is about 0.09.
    expect(many.winRateInterval[0]).toBeGreaterThan(0.52);
    expect(many.winRateInterval[1]).toBeLessThan(0.78);
  });

  it('do not depend on the order the votes came in', () => {
    const a = humanFigures(['tuned', 'same', 'base', 'tuned']);
    const b = humanFigures(['base', 'tuned', 'tuned', 'same']);
    expect(a?.winRate).toBe(b?.winRate);
  });
});
