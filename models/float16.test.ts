import { describe, expect, it } from 'vitest';

import { fromHalf, fromHalfBits, toHalf, toHalfBits } from './float16.js';

describe('half precision', () => {
  it('encodes known values', () => {
    expect(toHalfBits(1)).toBe(0x3c00);
    expect(toHalfBits(-2)).toBe(0xc000);
    expect(toHalfBits(65504)).toBe(0x7bff);
    expect(toHalfBits(1e6)).toBe(0x7c00);
    expect(toHalfBits(2 ** -24)).toBe(0x0001);
    expect(toHalfBits(0.1)).toBe(0x2e66);
    expect(toHalfBits(NaN) & 0x7c00).toBe(0x7c00);
  });

  it('rounds halfway cases to even', () => {
    expect(toHalfBits(1 + 2 ** -11)).toBe(0x3c00);
    expect(toHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it('round-trips every finite half', () => {
    const mismatched: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = fromHalfBits(bits);
      if (Number.isFinite(value) && toHalfBits(value) !== bits) mismatched.push(bits);
    }
    expect(mismatched).toEqual([]);
  });

  it('converts arrays within half precision', () => {
    const values = Float32Array.of(0.5, -3.25, 1234.5, 1e-3);
    const back = fromHalf(toHalf(values));
    values.forEach((v, i) => expect(Math.abs(back[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11));
  });
});
