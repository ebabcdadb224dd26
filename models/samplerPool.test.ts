/** The sampler pool on the shapes pack's generator: lanes in worker threads against sample() in this one. */
import { dirname, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ModelInputError, ModelLayoutError } from './errors.js';
import { Generator } from './generator.js';
import { describeScheduler, sample, type SampleRequest } from './sampler.js';
import { folderBytes } from './lanes.js';
import { SamplerPool, splitRequest } from './samplerPool.js';

const base = resolve('packs/shapes/generator');
const request: SampleRequest = {
  prompts: ['one red circle', 'two blue squares', 'a green triangle'],
  seeds: [7, 8, 9],
  steps: 4,
  guidanceScale: 5,
  width: 64,
  height: 64,
};

describe('splitRequest', () => {
  it('cuts prompts, seeds and initial latents into contiguous parts of near-equal size', () => {
    const latents = { data: Float32Array.from({ length: 3 * 2 }, (_, i) => i), dims: [3, 2, 1, 1] };
    const parts = splitRequest({ ...request, initialLatents: latents, onStep: () => undefined }, 2);
    expect(parts.map((p) => p.prompts)).toEqual([['one red circle', 'two blue squares'], ['a green triangle']]);
    expect(parts.map((p) => p.seeds)).toEqual([[7, 8], [9]]);
    expect(parts.map((p) => [...p.initialLatents!.data])).toEqual([
      [0, 1, 2, 3],
      [4, 5],
    ]);
    expect(parts.map((p) => p.initialLatents!.dims)).toEqual([
      [2, 2, 1, 1],
      [1, 2, 1, 1],
    ]);
    // A function cannot cross to a thread; the pool reports steps itself.
    expect(parts.every((p) => p.onStep === undefined)).toBe(true);
  });

  it('makes no empty part, and leaves a request of no prompts whole for the lane to refuse', () => {
    expect(splitRequest(request, 8).map((p) => p.prompts.length)).toEqual([1, 1, 1]);
    expect(splitRequest({ ...request, prompts: [] }, 4)).toHaveLength(1);
  });
});

describe('SamplerPool', () => {
  let generator: Generator;
  let pool: SamplerPool;

  beforeAll(async () => {
    generator = await Generator.load({ base }, { threads: 1 });
    pool = await SamplerPool.load({ base }, { threads: 2, lanes: 2 });
  });

  afterAll(async () => {
    await generator?.release();
    await pool?.release();
  });

  it('gives the images, latents and scheduler that sample() gives in one thread', async () => {
    const steps: number[][] = [];
    const pooled = await pool.sample({ ...request, onStep: (step, total) => steps.push([step, total]) });
    const direct = await sample(generator, request);
    expect(pool.laneCount).toBe(2);
    expect(pooled.images.map((i) => i.data)).toEqual(direct.images.map((i) => i.data));
    expect(pooled.latents.dims).toEqual(direct.latents.dims);
    expect(Math.max(...pooled.latents.data.map((x, i) => Math.abs(x - direct.latents.data[i])))).toBeLessThanOrEqual(1e-5);
    expect(pooled.scheduler).toBe(describeScheduler(direct.scheduler, undefined));
    // A step is heard once both lanes have taken it.
    expect(steps).toEqual([1, 2, 3, 4].map((s) => [s, 4]));
    expect(pool.name).toBe(generator.name);
  });

  it('leaves the event loop free while the lanes denoise', async () => {
    let ticks = 0;
    const timer = setInterval(() => (ticks += 1), 5);
    const started = performance.now();
    await pool.sample({ ...request, steps: 20 });
    const elapsed = performance.now() - started;
    clearInterval(timer);
    // In this thread a model call holds the loop: sample() here lets no timer run during a call.
    expect(ticks).toBeGreaterThan(elapsed / 5 / 4);
  });

  it('refuses a bad request with the model error that names the field', async () => {
    await expect(pool.sample({ ...request, prompts: ['a red circle', ' ', 'a square'] })).rejects.toThrow(ModelInputError);
    await expect(pool.sample({ ...request, width: 60 })).rejects.toThrow(/width must be a positive multiple of/);
    await expect(pool.sample({ ...request, prompts: [] })).rejects.toThrow(/at least one prompt/);
  });

  it('refuses a folder that is no generator before any thread starts, naming it', async () => {
    await expect(SamplerPool.load({ base: resolve('packs/shapes') }, { lanes: 2 })).rejects.toThrow(ModelLayoutError);
  });

  it('sends each call to the least busy lane', async () => {
    const lanes = (pool as unknown as { lanes: { busy: number[] } }).lanes;
    const one = { ...request, prompts: ['one red circle'], seeds: [7] };
    const calls = [pool.sample(one), pool.sample({ ...one, seeds: [8] })];
    expect(lanes.busy).toEqual([1, 1]);
    const [first, second] = await Promise.all(calls);
    expect(lanes.busy).toEqual([0, 0]);
    expect(first.images[0].data).not.toEqual(second.images[0].data);
  });

  it('starts a lane again when its thread has died', async () => {
    const lanes = (pool as unknown as { lanes: { lanes: { worker: { terminate(): Promise<number> } }[] } }).lanes.lanes;
    await lanes[1].worker.terminate();
    await expect(pool.sample(request)).resolves.toMatchObject({ images: { length: 3 } });
  });

  it('counts one copy of the graphs as their folders hold them', async () => {
    expect(await folderBytes([dirname(pool.files.unet)])).toBeGreaterThan(100_000);
  });
});
