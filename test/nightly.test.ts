/**
 * Nights of a model line on the real stack: real workers (the plugin's), activities, models,
 * trainer and store, on a real dev server. A challenger whose LoRA a ruinous learning rate
 * breaks loses to its champion and is rejected; a rollback restores an earlier champion, and the
 * next night samples with exactly its UNet's bytes. Retraining an earlier round's dataset with
 * other settings skips sampling, judging and curation.
 */
import { createHash } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ActivityDependencies } from '../activities/dependencies.js';
import { SelfRewardClient } from '../client/index.js';
import { lineKeys } from '../contract/keys.js';
import type { Champion } from '../contract/lines.js';
import { readText } from '../models/png.js';
import { testGenerator } from '../models/testing/python.js';
import { findJson } from '../store/store.js';
import { localTemporal, recordHistory, testDependencies, withRoundWorkers } from './stack.js';
import { testDetector, tinyRoundInput } from './models.js';

let env: TestWorkflowEnvironment;
let deps: ActivityDependencies;
let round: Record<string, unknown>;
let selfReward: SelfRewardClient;

beforeAll(async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'nightly-'));
  const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
  env = await localTemporal();
  deps = testDependencies(scratch);
  // Enough held-out images that a broken generator's loss shows; few denoising steps for speed.
  round = tinyRoundInput(generator, detector, {
    sampling: { steps: 4 },
    lora: { maxSteps: 4, batchSize: 2, learningRate: 1e-4 },
    evaluation: {
      prompts: [
        { className: 'circle', text: 'two yellow circles on a white background' },
        { className: 'square', text: 'one red square on a grey background' },
        { className: 'triangle', text: 'three blue triangles on a white background' },
      ],
      seedsPerPrompt: 2,
      bootstrapResamples: 200,
    },
  });
  selfReward = new SelfRewardClient(env.client);
});

afterAll(async () => {
  await deps?.runtime.release();
  await env?.teardown();
});

const withWorkers = <T>(run: () => Promise<T>): Promise<T> => withRoundWorkers(env, deps, run);

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('nights of a model line on the real models', () => {
  it('rejects a challenger a ruinous learning rate broke, and a rollback makes the next night sample with the restored UNet byte for byte', async () => {
    const line = `real-${randomUUID().slice(0, 8)}`;
    const night = (lora: Record<string, unknown> = {}) => ({ line, round: { ...round, lora: { ...(round['lora'] as object), ...lora } } });
    await withWorkers(async () => {
      // Night 1, promoted by hand: a few held-out pairs cannot clear the gate's interval.
      const first = await (await selfReward.startNightly(night())).result();
      await selfReward.line(line).promote(first.decision.seq, 'test', 'champion for the test');
      const champion = (await selfReward.line(line).state()).champion;
      expect(champion).toMatchObject({ version: 2, tunedUnet: first.round.training.lora });
      const unetKey = `${first.round.training.lora}unet/model.onnx`;
      const unetBytes = sha256(await deps.store.get(unetKey));

      // Night 2 trains with a learning rate that wrecks its LoRA: it loses to the champion and is rejected.
      const second = await (await selfReward.startNightly(night({ learningRate: 1 }))).result();
      const againstChampion = second.round.evaluation.parent!;
      expect(second.decision).toMatchObject({ verdict: 'rejected', championBefore: 2, championAfter: 2 });
      expect(againstChampion.winRate).toBeLessThan(0.5);
      expect(second.decision.reasons[0]).toMatch(/^win rate against the parent .* does not start above 50.0%$/);
      expect((await findJson<Champion>(deps.store, lineKeys.current(line).replace('current.json', 'champions/000002.json')))?.tunedUnet).toBe(
        champion.tunedUnet,
      );

      // Promoted by mistake, then rolled back: the champion is night 1's again.
      await selfReward.line(line).promote(second.decision.seq, 'test', 'a mistake');
      const restored = await selfReward.line(line).rollback(2, 'test', 'night 2 was broken');
      expect(restored).toMatchObject({ kind: 'rollback', championBefore: 3, championAfter: 4 });

      // Night 3 samples from the restored champion: the same UNet, unchanged bytes.
      const third = await (await selfReward.startNightly(night())).result();
      expect(third.championBefore).toBe(4);
      const image = (await deps.store.list(`${third.round.root}/samples/`)).find((key) => key.endsWith('.png'))!;
      expect(readText(await deps.store.get(image))['generator']).toContain(first.round.training.lora.replace(/\/$/, ''));
      const fetched = join(deps.workDir, 'models', ...first.round.training.lora.split('/'), 'unet', 'model.onnx');
      expect(sha256(await readFile(fetched))).toBe(unetBytes);
      expect(sha256(await deps.store.get(unetKey))).toBe(unetBytes);
      // Night 3 trained on its own images and on the champion's dataset.
      expect(third.round.dataset.included).toBeGreaterThan(0);
      await recordHistory(env, third.decision.by);
      await recordHistory(env, `line-${line}`);
    });
  });

  it("retrains an earlier round's dataset with other settings, without sampling, judging or curating again", async () => {
    await withWorkers(async () => {
      const earlier = await (await selfReward.startRound(round)).result();
      const retrain = await selfReward.startRound({
        ...round,
        prompts: undefined,
        dataset: earlier.dataset.dataset,
        lora: { maxSteps: 3, batchSize: 2, rank: 8 },
      });
      const result = await retrain.result();
      const events = (await retrain.workflow.fetchHistory()).events ?? [];
      const scheduled = events.flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : []));
      // Three held-out prompts in the round's two shards: two shards of the evaluation.
      expect(scheduled).toEqual([
        'prepareRound',
        'curateDataset',
        'trainLora',
        'sampleReferences',
        'evaluateShard',
        'evaluateShard',
        'evaluateRound',
        'writeReport',
      ]);
      expect(result.samples).toEqual([]);
      expect(result.dataset).toMatchObject({ kept: earlier.dataset.kept, included: earlier.dataset.kept });
      expect(result.training.steps).toBe(3);
      expect(result.training.lora).not.toBe(earlier.training.lora);
      expect((await deps.store.get(result.report.report)).toString()).toContain(`images of the curated dataset <code>${earlier.dataset.dataset}</code>`);
      // The earlier round's LoRA is where it was.
      expect(await deps.store.exists(`${earlier.training.lora}unet/model.onnx`)).toBe(true);
    });
  });
});
