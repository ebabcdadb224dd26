import { describe, expect, it } from 'vitest';

import { parseSd21Args, SD21_DEFAULTS } from './sd21Args.js';

describe('parseSd21Args', () => {
  it('defaults to 256 px, 4 steps, batch 1, guidance 7.5, 2 threads, the folder under build/', () => {
    const options = parseSd21Args([], '/repo');
    expect(options).toEqual({ generator: '/repo/build/sd21-base-random', ...SD21_DEFAULTS });
  });

  it('takes every option, resolving the folder against the root', () => {
    const argv = [
      '--generator',
      'elsewhere',
      '--size',
      '512',
      '--steps',
      '20',
      '--batch',
      '4',
      '--guidance',
      '0',
      '--threads',
      '1',
      '--runs',
      '3',
      '--rounds',
      '1',
    ];
    expect(parseSd21Args(argv, '/repo')).toEqual({ generator: '/repo/elsewhere', size: 512, steps: 20, batch: 4, guidance: 0, threads: 1, runs: 3, rounds: 1 });
  });

  it('refuses sizes SD cannot take and counts that are not positive integers', () => {
    expect(() => parseSd21Args(['--size', '300'], '/')).toThrow(/--size must be a multiple of 64/);
    expect(() => parseSd21Args(['--steps', '0'], '/')).toThrow(/--steps must be a positive integer/);
    expect(() => parseSd21Args(['--threads', 'two'], '/')).toThrow(/--threads must be a positive integer/);
    expect(() => parseSd21Args(['--guidance=-1'], '/')).toThrow(/--guidance must be a number/);
    expect(() => parseSd21Args(['--unknown'], '/')).toThrow();
  });
});
