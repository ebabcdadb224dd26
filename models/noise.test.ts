import { describe, expect, it } from 'vitest';

import { GaussianNoise, GivenNoise, PerImageNoise } from './noise.js';

// Pinned when the generator was written; see noise.ts on why it must not drift.
const FIRST_NORMALS_OF_SEED_0 = [2.081209, 0.163466, 0.254131, 0.039282];

describe('GaussianNoise', () => {
  it('repeats its sequence for a seed and differs between seeds', () => {
    const a = new GaussianNoise(42).fill(new Float32Array(64));
    const b = new GaussianNoise(42).fill(new Float32Array(64));
    const c = new GaussianNoise(43).fill(new Float32Array(64));
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('keeps the documented sequence (changing it changes every seeded image)', () => {
    const first = Array.from(new GaussianNoise(0).fill(new Float32Array(4)), (x) => Number(x.toFixed(6)));
    expect(first).toEqual(FIRST_NORMALS_OF_SEED_0);
  });

  it('separates seeds that differ only above 32 bits', () => {
    const low = new GaussianNoise(7).fill(new Float32Array(8));
    const high = new GaussianNoise(7 + 2 ** 32).fill(new Float32Array(8));
    expect(high).not.toEqual(low);
  });

  it('draws unit normals', () => {
    const xs = new GaussianNoise(1).fill(new Float32Array(200_000));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1)).toBeLessThan(0.01);
  });

  it('rejects seeds that are not non-negative integers', () => {
    expect(() => new GaussianNoise(-1)).toThrow(/seed/);
    expect(() => new GaussianNoise(1.5)).toThrow(/seed/);
  });
});

describe('PerImageNoise', () => {
  it("gives each image its own seed's noise whatever the batch", () => {
    const batch = new PerImageNoise([5, 9]).next(8);
    expect(batch.subarray(4)).toEqual(new PerImageNoise([9]).next(4));
  });
});

describe('GivenNoise', () => {
  it('hands out tensors in order and refuses the wrong size or too many calls', () => {
    const noise = new GivenNoise([Float32Array.of(1, 2), Float32Array.of(3, 4)]);
    expect(noise.next(2)).toEqual(Float32Array.of(1, 2));
    expect(() => noise.next(3)).toThrow(/3 needed/);
    expect(noise.next(2)).toEqual(Float32Array.of(3, 4));
    expect(() => noise.next(2)).toThrow(/only 2 given/);
  });
});
