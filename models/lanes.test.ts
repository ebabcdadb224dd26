/** The rules that size and split a pool's lanes. */
import { describe, expect, it } from 'vitest';

import { ModelInputError } from './errors.js';
import { contiguousParts, defaultLanes, laneThreads } from './lanes.js';

describe('defaultLanes', () => {
  const gib = 2 ** 30;
  it('gives small graphs on a CPU one lane per thread while the copies fit in half the memory', () => {
    expect(defaultLanes('cpu', 8, 10 * 2 ** 20, 16 * gib)).toBe(8);
    expect(defaultLanes('cpu', 16, 0.9 * gib, 8 * gib)).toBe(4);
    expect(defaultLanes('cpu', 4, 0.9 * gib, 1 * gib)).toBe(1);
  });

  it('gives large graphs, and a GPU, one lane', () => {
    expect(defaultLanes('cpu', 16, 5 * gib, 256 * gib)).toBe(1);
    expect(defaultLanes('cuda:1', 16, 10 * 2 ** 20, 64 * gib)).toBe(1);
  });
});

describe('contiguousParts', () => {
  it('cuts items into near-equal contiguous parts, the larger first, none empty', () => {
    expect(contiguousParts(10, 4)).toEqual([
      [0, 3],
      [3, 6],
      [6, 8],
      [8, 10],
    ]);
    expect(contiguousParts(2, 4)).toEqual([
      [0, 1],
      [1, 2],
    ]);
    expect(contiguousParts(0, 4)).toEqual([[0, 0]]);
  });
});

describe('laneThreads', () => {
  it('shares the threads evenly, at least one a lane, and leaves one lane of unset threads to onnxruntime', () => {
    expect(laneThreads({ threads: 8, lanes: 4 })).toBe(2);
    expect(laneThreads({ threads: 3, lanes: 2 })).toBe(1);
    expect(laneThreads({ threads: 1, lanes: 4 })).toBe(1);
    expect(laneThreads({ lanes: 1 })).toBeNull();
    expect(() => laneThreads({ threads: 2, lanes: 0 })).toThrow(ModelInputError);
  });
});
