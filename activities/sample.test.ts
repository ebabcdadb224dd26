/** The sample activity on a real generator (the shapes pack's, or a random-weight one of its architecture). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { validateRoundInput, type RoundInput } from '../config/round.js';
import { pixelsOnly, readText } from '../models/png.js';
import { testGenerator } from '../models/testing/python.js';
import { LocalFolderStore } from '../store/local.js';
import { runActivity, storedInput } from '../test/activity.js';
import type { ActivityDependencies } from './dependencies.js';
import { ModelRuntime } from './runtime.js';
import { SampleCache } from './sampleCache.js';
import { samplePngs, seedBatches } from './sampling.js';
import { createActivities } from './index.js';
import { artifactKeys, roundRoot } from '../contract/keys.js';
import type { StageProgress } from '../contract/progress.js';
import { workerMetrics } from '../workers/dependencies.js';

let deps: ActivityDependencies;
let input: RoundInput;
const runtime = new ModelRuntime('cpu', 1);

beforeAll(async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'sample-activity-'));
  const generator = await testGenerator(scratch);
  const checked = validateRoundInput({
    generator: { base: generator },
    judge: { detector: 'unused', clip: 'unused' },
    prompts: [
      { className: 'circle', text: 'one red circle on a white background' },
      { className: 'square', text: 'two blue squares on a black background' },
      { className: 'circle', text: 'three green circles on a grey background' },
    ],
    evaluation: { prompts: [{ className: 'circle', text: 'unused' }] },
    samplesPerPrompt: 2,
    shards: 2,
    sampling: { steps: 2 },
  });
  if (!checked.ok) throw new Error('bad test input');
  input = checked.value;
  deps = {
    store: new LocalFolderStore(join(scratch, 'store')),
    runtime,
    trainer: { command: ['false'], cwd: '.', env: {}, stopGraceMs: 0, address: '127.0.0.1' },
    device: 'cpu',
    threads: 1,
    workDir: join(scratch, 'work'),
    allowedPaths: null,
    metrics: workerMetrics(),
  };
});

afterAll(async () => runtime.release());

function recorder(env: MockActivityEnvironment): StageProgress[] {
  const beats: StageProgress[] = [];
  env.on('heartbeat', (d: StageProgress) => beats.push(d));
  return beats;
}

describe('sampleShard', () => {
  it("samples its shard's prompts, one heartbeat per image, and resumes after the images already stored", async () => {
    const { sampleShard } = createActivities(deps);
    const root = roundRoot('sample-test', 'run-1', 1);
    const env = new MockActivityEnvironment();
    const beats = recorder(env);
    const inputKey = await storedInput(deps.store, root, input);
    const first = await runActivity(env, sampleShard, { root, inputKey, shard: 0 });
    // Shard 0 of 2 holds prompts 0 and 2.
    expect(first).toMatchObject({ shard: 0, prompts: 2, images: 4, classes: ['circle'] });
    expect(beats.filter((b) => b.sampled !== undefined).map((b) => b.sampled)).toEqual(expect.arrayContaining([0, 1, 2, 3, 4]));
    const keys = await deps.store.list(artifactKeys.sampleFolder(root, 0));
    expect(keys).toEqual([0, 1].map((k) => artifactKeys.sampledImage(root, 0, 0, k)).concat([0, 1].map((k) => artifactKeys.sampledImage(root, 0, 2, k))));
    const text = readText(await deps.store.get(keys[3]!));
    expect(text).toMatchObject({ prompt: 'three green circles on a grey background', class: 'circle', seed: String(2 * 2 + 1), steps: '2' });

    // A crash after three images: the manifest and the last image never made it.
    const lost = keys[3]!;
    const original = await deps.store.get(lost);
    await rm(deps.store.locate(lost));
    await rm(deps.store.locate(artifactKeys.sampleManifest(root, 0)));
    const retry = new MockActivityEnvironment();
    const retryBeats = recorder(retry);
    expect(await runActivity(retry, sampleShard, { root, inputKey, shard: 0 })).toEqual(first);
    expect([...new Set(retryBeats.map((b) => b.sampled))]).toEqual([3, 4]);
    expect((await deps.store.get(lost)).equals(original)).toBe(true);

    // With the manifest in place, nothing is sampled again.
    const again = new MockActivityEnvironment();
    const none = recorder(again);
    expect(await runActivity(again, sampleShard, { root, inputKey, shard: 0 })).toEqual(first);
    expect(none).toEqual([]);
  });

  it("keeps each image it samples in the worker's cache, the store's bytes, and names the worker's own queue", async () => {
    const sampleCache = new SampleCache(join(deps.workDir, 'samples'), 1 << 20);
    const { sampleShard } = createActivities({ ...deps, sampleCache, workerQueue: 'self-reward-gpu@test' });
    const root = roundRoot('sample-cache', 'run-1', 1);
    const result = await runActivity(new MockActivityEnvironment(), sampleShard, { root, inputKey: await storedInput(deps.store, root, input), shard: 1 });
    expect(result).toMatchObject({ shard: 1, images: 2, workerQueue: 'self-reward-gpu@test' });
    for (const k of [0, 1]) {
      const key = artifactKeys.sampledImage(root, 1, 1, k);
      expect(await sampleCache.get(key)).toEqual(await deps.store.get(key));
    }
    // Without a queue of its own (a worker not set up by the plugin), the result names none.
    const { sampleShard: plain } = createActivities(deps);
    expect(
      await runActivity(new MockActivityEnvironment(), plain, { root, inputKey: await storedInput(deps.store, root, input), shard: 1 }),
    ).not.toHaveProperty('workerQueue');
  });

  it('fails without retry when the generator folder is not a generator', async () => {
    const { sampleShard } = createActivities(deps);
    const broken = { ...input, generator: { base: join(tmpdir(), 'no-such-generator'), tunedUnet: null } };
    const root = roundRoot('sample-broken', 'run-1', 1);
    const error = await runActivity(new MockActivityEnvironment(), sampleShard, {
      root,
      inputKey: await storedInput(deps.store, root, broken),
      shard: 0,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toMatchObject({ type: 'BadModel', nonRetryable: true, message: expect.stringContaining('no-such-generator') });
  });

  it('stops between prompts when cancelled and publishes no manifest', async () => {
    const { sampleShard } = createActivities(deps);
    const root = roundRoot('sample-cancel', 'run-1', 1);
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: StageProgress) => {
      if (d.sampled === 2) env.cancel();
    });
    const error = await runActivity(env, sampleShard, { root, inputKey: await storedInput(deps.store, root, input), shard: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledFailure);
    expect(await deps.store.exists(artifactKeys.sampleManifest(root, 0))).toBe(false);
    expect(await deps.store.list(artifactKeys.sampleFolder(root, 0))).toHaveLength(2);
  });
});

describe('sampling.batchSize', () => {
  it('splits seeds into runs of at most the batch size, or one run when null', () => {
    expect(seedBatches([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(seedBatches([1, 2, 3], null)).toEqual([[1, 2, 3]]);
    expect(seedBatches([1, 2, 3], 10)).toEqual([[1, 2, 3]]);
    expect(seedBatches([], null)).toEqual([]);
  });

  it('gives the same images, pixels and text, whatever the batch size', async () => {
    const prompt = { className: 'circle', text: 'one red circle on a white background' };
    const seeds = [11, 12, 13];
    const [together, single, pairs] = await runtime.withGenerator({ base: input.generator.base }, async (generator) => {
      const steps: number[] = [];
      const run = async (batchSize: number | null) => {
        let count = 0;
        const pngs = await samplePngs(generator, { ...input.sampling, batchSize }, prompt, seeds, () => (count += 1));
        steps.push(count);
        return pngs;
      };
      const result = [await run(null), await run(1), await run(2)];
      // One step callback per denoising step and batch.
      expect(steps).toEqual([2, 6, 4]);
      return result;
    });
    expect(together).toHaveLength(3);
    expect(single.map(pixelsOnly)).toEqual(together.map(pixelsOnly));
    expect(pairs.map(pixelsOnly)).toEqual(together.map(pixelsOnly));
    expect(single.map(readText)).toEqual(together.map(readText));
    expect(readText(single[2]!).seed).toBe('13');
  });

  it('gives the same images in two lanes, a batch per lane at once or a batch split between them', async () => {
    const prompt = { className: 'circle', text: 'one red circle on a white background' };
    const seeds = [11, 12, 13];
    const oneLane = await runtime.withGenerator({ base: input.generator.base }, (generator) =>
      samplePngs(generator, input.sampling, prompt, seeds, () => undefined),
    );
    const loaded: string[] = [];
    const twoLanes = new ModelRuntime('cpu', 2, 2, (line) => loaded.push(line));
    try {
      const [split, perLane] = await twoLanes.withGenerator({ base: input.generator.base }, async (generator) => {
        expect(generator.laneCount).toBe(2);
        return [
          await samplePngs(generator, { ...input.sampling, batchSize: null }, prompt, seeds, () => undefined),
          await samplePngs(generator, { ...input.sampling, batchSize: 1 }, prompt, seeds, () => undefined),
        ];
      });
      expect(split).toEqual(oneLane);
      expect(perLane).toEqual(oneLane);
      // Loaded once for both calls, and said so.
      expect(loaded).toEqual([expect.stringMatching(/^loaded the generator \/.*generator in 2 lanes \(\d+\.\d s\)$/)]);
    } finally {
      await twoLanes.release();
    }
  });
});
