import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { SchedulerConfigError } from '../errors.js';
import { parsePythonJson, parseSchedulerConfig, readRawSchedulerConfig } from './config.js';

const SD_DDIM = {
  _class_name: 'DDIMScheduler',
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  prediction_type: 'epsilon',
  clip_sample: false,
  set_alpha_to_one: false,
  steps_offset: 1,
  timestep_spacing: 'leading',
};

const parse = (fields: Record<string, unknown>, options = {}) => parseSchedulerConfig({ ...SD_DDIM, ...fields }, 'scheduler_config.json', options);

describe('parseSchedulerConfig', () => {
  it('reads a Stable Diffusion scheduler config', () => {
    expect(parse({})).toMatchObject({
      className: 'DDIMScheduler',
      betaSchedule: 'scaled_linear',
      predictionType: 'epsilon',
      timestepSpacing: 'leading',
      stepsOffset: 1,
      clipSample: false,
      setAlphaToOne: false,
    });
  });

  it("fills a field the file lacks with the class's diffusers default", () => {
    const { timestep_spacing: _spacing, ...withoutSpacing } = SD_DDIM;
    expect(parseSchedulerConfig(withoutSpacing, 'f').timestepSpacing).toBe('leading');
    expect(parseSchedulerConfig(withoutSpacing, 'f', { className: 'EulerDiscreteScheduler' }).timestepSpacing).toBe('linspace');
    expect(parseSchedulerConfig({ _class_name: 'DDIMScheduler' }, 'f')).toMatchObject({ clipSample: true, setAlphaToOne: true, betaSchedule: 'linear' });
  });

  it('applies another class and overrides as from_config does', () => {
    const config = parse({}, { className: 'DPMSolverMultistepScheduler', overrides: { use_karras_sigmas: true, prediction_type: 'v_prediction' } });
    expect(config).toMatchObject({
      className: 'DPMSolverMultistepScheduler',
      useKarrasSigmas: true,
      predictionType: 'v_prediction',
      solverOrder: 2,
      timestepSpacing: 'leading',
    });
  });

  it.each([
    [{ _class_name: 'PNDMScheduler' }, /"_class_name" must be one of DDIMScheduler, EulerDiscreteScheduler/],
    [{ beta_schedule: 'squaredcos_cap_v2' }, /"beta_schedule" must be one of "linear", "scaled_linear", got "squaredcos_cap_v2"/],
    [{ prediction_type: 'sample' }, /"prediction_type" must be one of "epsilon", "v_prediction"/],
    [{ timestep_spacing: 'uniform' }, /"timestep_spacing" must be one of/],
    [{ steps_offset: -1 }, /"steps_offset" must be an integer >= 0, got -1/],
    [{ beta_start: '0.1' }, /"beta_start" must be a number in \(0, 1\), got "0.1"/],
    [{ num_train_timesteps: 1.5 }, /"num_train_timesteps" must be an integer >= 2/],
    [{ trained_betas: [0.1, 0.2] }, /"trained_betas" must be a list of num_train_timesteps \(1000\) numbers/],
    [{ thresholding: true }, /"thresholding" must be false \(other values are not supported\)/],
    [{ rescale_betas_zero_snr: true }, /"rescale_betas_zero_snr" must be false/],
    [{ clip_sample: 'yes' }, /"clip_sample" must be true or false/],
  ])('names the field at fault: %j', (fields, message) => {
    expect(() => parse(fields)).toThrow(SchedulerConfigError);
    expect(() => parse(fields)).toThrow(message);
  });

  it('refuses DPM-Solver variants it does not implement', () => {
    expect(() => parse({}, { className: 'DPMSolverMultistepScheduler', overrides: { algorithm_type: 'sde-dpmsolver++' } })).toThrow(
      /"algorithm_type" must be one of "dpmsolver\+\+"/,
    );
    expect(() => parse({}, { className: 'DPMSolverMultistepScheduler', overrides: { solver_order: 3 } })).toThrow(/"solver_order" must be one of 1, 2/);
  });

  it('names the file in every error', () => {
    expect(() => parseSchedulerConfig([], '/models/sd/scheduler/scheduler_config.json')).toThrow(
      /^\/models\/sd\/scheduler\/scheduler_config.json: expected a JSON object/,
    );
  });
});

describe('parsePythonJson', () => {
  it('reads the infinities Python writes, leaving strings alone', () => {
    expect(parsePythonJson('{"a": -Infinity, "b": [Infinity], "c": "-Infinity is text"}')).toEqual({
      a: -Infinity,
      b: [Infinity],
      c: '-Infinity is text',
    });
  });
});

describe('readRawSchedulerConfig', () => {
  it('names the file when it is missing or not JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scheduler-config-'));
    const broken = join(dir, 'scheduler_config.json');
    await writeFile(broken, '{"_class_name": ');
    await expect(readRawSchedulerConfig(broken)).rejects.toThrow(`${broken}: not valid JSON`);
    await expect(readRawSchedulerConfig(join(dir, 'absent.json'))).rejects.toThrow(/absent.json: cannot read the scheduler config/);
  });
});
