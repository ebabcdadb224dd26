import { describe, expect, it } from 'vitest';

import { parseSchedulerConfig } from './config.js';
import { SCHEDULER_CLASS_NAMES, type SchedulerClassName } from './names.js';
import { createScheduler, SCHEDULERS } from './registry.js';
import { roundHalfEven } from './schedule.js';

/** Stable Diffusion's training schedule (as in SD 1.x / 2.x scheduler_config.json). */
const SD = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  steps_offset: 1,
  clip_sample: false,
  set_alpha_to_one: false,
  timestep_spacing: 'leading',
};

function scheduler(className: SchedulerClassName, overrides: Record<string, unknown> = {}, steps = 6) {
  const s = createScheduler(parseSchedulerConfig({ ...SD, ...overrides }, 'test', { className }));
  s.setTimesteps(steps);
  return s;
}

const close = (actual: ArrayLike<number>, expected: number[], tolerance: number) => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(Math.abs(actual[i] - e)).toBeLessThanOrEqual(tolerance));
};

// Values printed by diffusers 0.42.1 for the same configs (the parity test also compares live).
describe('timesteps as diffusers computes them', () => {
  it.each([
    ['DDIMScheduler', {}, 6, [831, 665, 499, 333, 167, 1]],
    ['DDIMScheduler', { timestep_spacing: 'trailing' }, 6, [999, 832, 666, 499, 332, 166]],
    ['DDIMScheduler', { timestep_spacing: 'linspace' }, 6, [999, 799, 599, 400, 200, 0]],
    // 812.5 rounds to even (812): numpy's rounding, not Math.round's.
    ['DDIMScheduler', { timestep_spacing: 'trailing' }, 16, [999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61]],
    ['DPMSolverMultistepScheduler', {}, 6, [853, 711, 569, 427, 285, 143]],
    ['DPMSolverMultistepScheduler', { timestep_spacing: 'linspace' }, 8, [999, 874, 749, 624, 500, 375, 250, 125]],
    ['DPMSolverMultistepScheduler', { use_karras_sigmas: true }, 6, [999, 837, 594, 249, 30, 0]],
    ['EulerDiscreteScheduler', { timestep_spacing: 'linspace' }, 6, [999, Math.fround(799.2), Math.fround(599.4), Math.fround(399.6), Math.fround(199.8), 0]],
  ] as const)('%s %j, %i steps', (className, overrides, steps, expected) => {
    close(scheduler(className, overrides, steps).timesteps, [...expected], 1e-9);
  });

  it('Euler with Karras sigmas lands between training timesteps', () => {
    const s = scheduler('EulerDiscreteScheduler', { use_karras_sigmas: true });
    close(s.timesteps, [831, 654.2946166992188, 410.485595703125, 153.51214599609375, 24.649324417114258, 1.0000001192092896], 2e-3);
  });

  it('Euler starts from σ_max, or sqrt(σ_max² + 1) with leading spacing', () => {
    expect(scheduler('EulerDiscreteScheduler').initNoiseSigma).toBeCloseTo(5.990506172180176, 5);
    expect(scheduler('EulerDiscreteScheduler', { timestep_spacing: 'trailing' }).initNoiseSigma).toBeCloseTo(14.614646911621094, 4);
    const linear = createScheduler(parseSchedulerConfig({ _class_name: 'EulerDiscreteScheduler' }, 'test'));
    linear.setTimesteps(4);
    close(linear.timesteps, [999, 666, 333, 0], 0);
    expect(linear.initNoiseSigma).toBeCloseTo(157.4072723388672, 3);
  });
});

describe('scheduler objects', () => {
  it('registry maps every supported class name', () => {
    expect(Object.keys(SCHEDULERS).sort()).toEqual([...SCHEDULER_CLASS_NAMES].sort());
    for (const name of SCHEDULER_CLASS_NAMES) expect(scheduler(name)).toBeInstanceOf(SCHEDULERS[name]);
  });

  it('refuses steps out of order or past the end', () => {
    const s = scheduler('EulerDiscreteScheduler');
    const x = new Float32Array(4);
    expect(() => s.step(x, s.timesteps[1], x)).toThrow(/expected timestep 831/);
    for (const t of s.timesteps) s.step(x, t, x);
    expect(() => s.step(x, 1, x)).toThrow(/call setTimesteps/);
  });

  it('Euler ancestral needs noise and uses it', () => {
    const s = scheduler('EulerAncestralDiscreteScheduler');
    const x = new Float32Array(4).fill(1);
    expect(() => s.step(x, s.timesteps[0], x)).toThrow(/needs noise of 4 values/);
    const quiet = s.step(x, s.timesteps[0], x, new Float32Array(4));
    const noisy = scheduler('EulerAncestralDiscreteScheduler').step(x, s.timesteps[0], x, new Float32Array(4).fill(1));
    expect(noisy[0]).toBeGreaterThan(quiet[0]);
  });

  it('DDIM with a zero noise prediction scales the sample by sqrt(ᾱ_prev / ᾱ_t)', () => {
    const s = scheduler('DDIMScheduler', { beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02 }, 10);
    const [t] = s.timesteps;
    const out = s.step(new Float32Array(1), t, Float32Array.of(1));
    let at = 1;
    let prev = 1;
    for (let i = 0; i <= t; i++) {
      const beta = 0.0001 + ((0.02 - 0.0001) * i) / 999;
      at *= 1 - beta;
      if (i === t - 100) prev = at;
    }
    expect(out[0]).toBeCloseTo(Math.sqrt(prev / at), 5);
  });

  it('rejects a step count the training schedule cannot give', () => {
    expect(() => scheduler('DDIMScheduler', {}, 0)).toThrow(/steps must be an integer in \[1, 1000\]/);
    expect(() => scheduler('DDIMScheduler', {}, 1001)).toThrow(RangeError);
  });
});

describe('roundHalfEven', () => {
  it('rounds halves to the even neighbour like numpy', () => {
    expect([0.5, 1.5, 2.5, 812.5, -1.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, 812, -2, 2, 3]);
  });
});
