import { describe, expect, it } from 'vitest';

import type { ValidationResult } from './activities.js';
import { chooseLora, loraSeedsFigures, spread, trainerSeeds, validationSplit } from './seeds.js';

describe('trainerSeeds', () => {
  it('counts up from lora.seed', () => {
    expect(trainerSeeds({ seed: 7, seeds: 3 })).toEqual([7, 8, 9]);
    expect(trainerSeeds({ seed: 0, seeds: 1 })).toEqual([0]);
  });
});

describe('validationSplit', () => {
  it('withholds the rounded share, sorted, the same for the same seed', () => {
    const split = validationSplit(100, 0.2, 3)!;
    expect(split).toHaveLength(20);
    expect(split).toEqual([...split].sort((a, b) => a - b));
    expect(new Set(split).size).toBe(20);
    expect(split.every((i) => Number.isInteger(i) && i >= 0 && i < 100)).toBe(true);
    expect(validationSplit(100, 0.2, 3)).toEqual(split);
  });

  it('is drawn by the seed, not the file order', () => {
    const a = validationSplit(100, 0.2, 3)!;
    const b = validationSplit(100, 0.2, 4)!;
    expect(a).not.toEqual(b);
    expect(a).not.toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('keeps at least one prompt on each side', () => {
    expect(validationSplit(3, 0.01, 0)).toHaveLength(1);
    expect(validationSplit(3, 0.9, 0)).toHaveLength(2);
    expect(validationSplit(2, 0.5, 0)).toHaveLength(1);
  });

  it('cannot split fewer than two prompts', () => {
    expect(validationSplit(1, 0.2, 0)).toBeNull();
    expect(validationSplit(0, 0.2, 0)).toBeNull();
  });

  it("keeps a prompt's side when prompts are added after it, for most prompts", () => {
    // Each prompt's rank depends on its index and the seed only: a longer file moves few of the first prompts' sides.
    const short = new Set(validationSplit(100, 0.2, 1));
    const long = new Set(validationSplit(110, 0.2, 1));
    const moved = Array.from({ length: 100 }, (_, i) => i).filter((i) => short.has(i) !== long.has(i));
    expect(moved.length).toBeLessThan(10);
  });
});

const candidate = (seed: number, accuracyTuned: number, winRate: number) => ({ seed, accuracyTuned, winRate });

describe('chooseLora', () => {
  it('keeps the highest validation accuracy', () => {
    expect(chooseLora([candidate(0, 0.5, 0.9), candidate(1, 0.6, 0.1), candidate(2, 0.55, 0.5)]).seed).toBe(1);
  });

  it('breaks an accuracy tie by the win rate against the base', () => {
    expect(chooseLora([candidate(0, 0.6, 0.5), candidate(1, 0.6, 0.55), candidate(2, 0.4, 0.9)]).seed).toBe(1);
  });

  it('then by the lowest seed, whatever the order the LoRAs finished in', () => {
    expect(chooseLora([candidate(5, 0.6, 0.5), candidate(3, 0.6, 0.5), candidate(4, 0.6, 0.5)]).seed).toBe(3);
  });

  it('refuses an empty list', () => {
    expect(() => chooseLora([])).toThrow('no LoRA');
  });
});

describe('spread', () => {
  it('gives min, max, mean and the sample standard deviation', () => {
    const s = spread([0.1, 0.2, 0.3]);
    expect(s.min).toBe(0.1);
    expect(s.max).toBe(0.3);
    expect(s.mean).toBeCloseTo(0.2, 12);
    expect(s.sd).toBeCloseTo(0.1, 12);
    expect(spread([0.4]).sd).toBe(0);
  });
});

describe('loraSeedsFigures', () => {
  it('lists every LoRA by seed with its gain, marks the kept one, and spreads the gains', () => {
    const result = (seed: number, accuracyTuned: number, winRate: number): ValidationResult => ({
      manifest: `v/${seed}.json`,
      seed,
      lora: `l/${seed}/`,
      prompts: 4,
      pairs: 8,
      accuracyBase: 0.5,
      accuracyTuned,
      winRate,
      finalLoss: seed === 2 ? null : 0.1,
    });
    const figures = loraSeedsFigures([result(2, 0.625, 0.6), result(1, 0.75, 0.5), result(3, 0.5, 0.4)]);
    expect(figures.kept).toBe(1);
    expect(figures.validationPrompts).toBe(4);
    expect(figures.validationPairs).toBe(8);
    expect(figures.perSeed.map((s) => [s.seed, s.accuracyGain, s.kept, s.finalLoss, s.validation])).toEqual([
      [1, 0.25, true, 0.1, 'v/1.json'],
      [2, 0.125, false, null, 'v/2.json'],
      [3, 0, false, 0.1, 'v/3.json'],
    ]);
    expect(figures.accuracyGain).toEqual({ min: 0, max: 0.25, mean: 0.125, sd: 0.125 });
  });
});
