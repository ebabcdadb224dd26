import { describe, expect, it } from 'vitest';
import { mulberry32 } from './prng.js';
import { bootstrapInterval, meanDifference, meanPairwiseCosineDistance, percentile, perClassAccuracy, signTest, winRate, type Pair } from './stats.js';

const pair = (prompt: string, seed: number, base: number, tuned: number): Pair => ({ prompt, seed, base, tuned });

describe('paired comparison', () => {
  const pairs = [pair('a', 0, 1, 2), pair('a', 1, 2, 2), pair('b', 0, 3, 1), pair('b', 1, 0, 5)];

  it('counts ties as half a win', () => {
    expect(winRate(pairs)).toBe((1 + 0.5 + 0 + 1) / 4);
  });

  it('averages tuned minus base', () => {
    expect(meanDifference(pairs)).toBe((1 + 0 - 2 + 5) / 4);
  });

  it('refuses an empty comparison', () => {
    expect(() => winRate([])).toThrow(/no pairs/);
  });
});

describe('sign test', () => {
  // Reference values: scipy.stats.binomtest(k, n).pvalue.
  it.each([
    [3, 7, 0.34375],
    [7, 3, 0.34375],
    [0, 5, 0.0625],
    [40, 60, 0.05688793364098089],
    [5, 5, 1],
  ])('%i wins, %i losses', (wins, losses, p) => {
    const pairs = [
      ...Array.from({ length: wins }, (_, i) => pair(`w${i}`, 0, 0, 1)),
      ...Array.from({ length: losses }, (_, i) => pair(`l${i}`, 0, 1, 0)),
      pair('tie', 0, 1, 1),
    ];
    expect(signTest(pairs)).toBeCloseTo(p, 12);
  });

  it('is 1 when every pair ties', () => {
    expect(signTest([pair('a', 0, 1, 1)])).toBe(1);
  });
});

describe('bootstrap', () => {
  it('interpolates percentiles like numpy', () => {
    expect(percentile([1, 2, 3, 4], 2.5)).toBeCloseTo(1.075, 12);
    expect(percentile([1, 2, 3, 4], 97.5)).toBeCloseTo(3.925, 12);
  });

  it('is reproducible from its seed and brackets the estimate', () => {
    const pairs = Array.from({ length: 40 }, (_, i) => pair(`p${i % 10}`, i, 0, Math.sin(i)));
    const a = bootstrapInterval(pairs, meanDifference, { seed: 7 });
    expect(bootstrapInterval(pairs, meanDifference, { seed: 7 })).toEqual(a);
    expect(bootstrapInterval(pairs, meanDifference, { seed: 8 })).not.toEqual(a);
    expect(a[0]).toBeLessThan(meanDifference(pairs));
    expect(a[1]).toBeGreaterThan(meanDifference(pairs));
  });

  it('resamples whole prompts: one prompt gives a degenerate interval', () => {
    const pairs = [pair('only', 0, 0, 1), pair('only', 1, 1, 0)];
    expect(bootstrapInterval(pairs, winRate)).toEqual([0.5, 0.5]);
  });

  it('draws uniform numbers in [0, 1)', () => {
    const random = mulberry32(1);
    const draws = Array.from({ length: 10_000 }, random);
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
    expect(draws.reduce((s, v) => s + v, 0) / draws.length).toBeCloseTo(0.5, 1);
  });
});

describe('diversity', () => {
  const v = (...xs: number[]) => new Float32Array(xs);

  it("averages 1 - cos over every unordered pair, whatever the vectors' lengths", () => {
    // (1,0)-(0,1): 1; each against (1,1): 1 - 1/√2.
    expect(meanPairwiseCosineDistance([v(1, 0), v(0, 3), v(2, 2)])).toBeCloseTo((3 - Math.SQRT2) / 3, 7);
    expect(meanPairwiseCosineDistance([v(1, 2), v(2, 4)])).toBeCloseTo(0, 7);
    expect(meanPairwiseCosineDistance([v(1, 0), v(-1, 0)])).toBe(2);
  });

  it('is null with fewer than two images: no pair to compare', () => {
    expect(meanPairwiseCosineDistance([v(1, 0)])).toBeNull();
    expect(meanPairwiseCosineDistance([])).toBeNull();
  });
});

describe('per-class detector accuracy', () => {
  it('compares base and tuned per class', () => {
    const acc = perClassAccuracy([
      { className: 'star', base: false, tuned: true },
      { className: 'star', base: true, tuned: true },
      { className: 'cross', base: true, tuned: false },
    ]);
    expect(acc.get('star')).toEqual({ pairs: 2, base: 0.5, tuned: 1, gain: 0.5 });
    expect(acc.get('cross')).toEqual({ pairs: 1, base: 1, tuned: 0, gain: -1 });
  });
});
