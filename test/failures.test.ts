/**
 * One error vocabulary, end to end: for each class of failure no retry can fix, a real round
 * (real workers, activities, models and a real dev server) fails on the activity's first
 * attempt, with the failure type and a message naming the field or file. Rounds are allowed five
 * attempts, so a failure that were retried would show an attempt above one.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ActivityFailure, ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ActivityDependencies } from '../activities/dependencies.js';
import { SelfRewardClient } from '../client/index.js';
import type { FailureType } from '../contract/failures.js';
import { artifactKeys, roundRoot } from '../contract/keys.js';
import type { SampleManifest } from '../contract/records.js';
import { testGenerator } from '../models/testing/python.js';
import { getJson, putJson } from '../store/store.js';
import { localTemporal, testDependencies, withRoundWorkers } from './stack.js';
import { PACK, testDetector, tinyRoundInput } from './models.js';

let env: TestWorkflowEnvironment;
let deps: ActivityDependencies;
let scratch: string;
let base: Record<string, unknown>;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'failures-'));
  const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
  env = await localTemporal();
  deps = testDependencies(scratch);
  base = tinyRoundInput(generator, detector, { sampling: { steps: 2 }, lora: { maxSteps: 2, batchSize: 2 }, activities: { maximumAttempts: 5 } });
});

afterAll(async () => {
  await deps?.runtime.release();
  await env?.teardown();
});

interface Observed {
  readonly activity: string;
  readonly type: string | undefined;
  readonly nonRetryable: boolean | null | undefined;
  readonly message: string;
  /** The attempt of every activity task started, in the order of the history. */
  readonly attempts: readonly number[];
}

/**
 * Runs a round to its failure on real workers: which activity failed, how, and on which attempt.
 * `prepare` sees the round's artifact folder before any worker runs.
 */
async function failedRound(
  input: Record<string, unknown>,
  prepare?: (root: string) => Promise<void>,
  dependencies = deps,
  workflowId = `failing-${randomUUID()}`,
): Promise<Observed> {
  const round = await new SelfRewardClient(env.client).startRound(input, { workflowId });
  await prepare?.(roundRoot(round.workflowId, (await round.workflow.describe()).runId, 1));
  return withRoundWorkers(env, dependencies, async () => {
    const error = await round.result().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const activity = (error as WorkflowFailedError).cause;
    expect(activity).toBeInstanceOf(ActivityFailure);
    const failure = (activity as ActivityFailure).cause;
    expect(failure).toBeInstanceOf(ApplicationFailure);
    const events = (await round.workflow.fetchHistory()).events ?? [];
    return {
      activity: (activity as ActivityFailure).activityType,
      type: (failure as ApplicationFailure).type ?? undefined,
      nonRetryable: (failure as ApplicationFailure).nonRetryable,
      message: (failure as ApplicationFailure).message,
      attempts: events.flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 0] : [])),
    };
  });
}

function expectFailedAtOnce(observed: Observed, activity: string, type: FailureType, message: RegExp): void {
  expect(observed).toMatchObject({ activity, type, nonRetryable: true });
  expect(observed.message).toMatch(message);
  expect(observed.attempts.every((a) => a === 1)).toBe(true);
}

describe('a round fails at once, naming what is wrong', () => {
  it('BadModel: a CLIP folder given as the detector', async () => {
    const observed = await failedRound({ ...base, judge: { ...(base['judge'] as object), detector: join(PACK, 'clip') } });
    expectFailedAtOnce(observed, 'prepareRound', 'BadModel', /clip\/config.json: model_type "clip" is not a supported detector/);
  });

  it('BadModel: a generator folder without its ONNX parts', async () => {
    const empty = await mkdtemp(join(scratch, 'generator-'));
    const observed = await failedRound({ ...base, generator: { base: empty } });
    expectFailedAtOnce(observed, 'prepareRound', 'BadModel', new RegExp(empty));
  });

  it('InvalidInput: an image size the generator cannot draw', async () => {
    const observed = await failedRound({ ...base, sampling: { steps: 2, width: 12, height: 12 } });
    expectFailedAtOnce(observed, 'prepareRound', 'InvalidInput', /sampling.width: expected 0 or a multiple of 8 .*got 12/);
  });

  it('BadPrompts: a prompt file with a malformed line, named with its line number', async () => {
    const file = join(scratch, 'prompts.txt');
    await writeFile(file, 'circle; one red circle\nno class on this line\n');
    const observed = await failedRound({ ...base, prompts: { file } });
    expectFailedAtOnce(observed, 'prepareRound', 'BadPrompts', new RegExp(`${file}:2: expected a line \`class; prompt\`.*got a line without ";"`));
    // The file's text stays out of the failure (and so out of the history): it may not be a prompt file at all.
    expect(observed.message).not.toContain('no class on this line');
  });

  it('InvalidInput: a prompt file outside the folders the worker may read, named without its contents', async () => {
    const restricted = { ...deps, allowedPaths: [PACK, scratch] };
    const observed = await failedRound({ ...base, prompts: { file: '/etc/hostname' } }, undefined, restricted);
    expectFailedAtOnce(observed, 'prepareRound', 'InvalidInput', /prompts.file: \/etc\/hostname is outside the folders this worker may read/);
  });

  it('BadTrainingInput: a threshold no image reaches leaves nothing to train on', async () => {
    const observed = await failedRound({ ...base, judge: { ...(base['judge'] as object), threshold: 1 } });
    expectFailedAtOnce(observed, 'curateDataset', 'BadTrainingInput', /no prompt kept an image/);
  });

  it('BadArtifact: a stored image that does not decode', async () => {
    // Shards whose published sample manifests list an image the store holds as garbage.
    let key = '';
    const observed = await failedRound(base, async (root) => {
      key = artifactKeys.sampledImage(root, 0, 0, 0);
      await deps.store.put(key, 'not an image');
      for (const shard of [0, 1]) {
        const manifest: SampleManifest = {
          shard,
          prompts: [{ promptIndex: shard, className: 'circle', text: 'one red circle on a white background' }],
          images: [{ key, promptIndex: shard, k: 0, seed: 0 }],
        };
        await putJson(deps.store, artifactKeys.sampleManifest(root, shard), manifest);
      }
    });
    expectFailedAtOnce(observed, 'judgeShard', 'BadArtifact', new RegExp(`${key}.*does not decode`));
    expect(observed.message).not.toContain('not an image');
  });
});

describe('a new run of a finished round id', () => {
  it("samples afresh under its own run's folder, never reusing the earlier run's samples", async () => {
    const workflowId = `reused-${randomUUID()}`;
    const client = new SelfRewardClient(env.client);
    const prompts = base['prompts'] as { className: string; text: string }[];
    const changed = prompts.map((p) => ({ ...p, text: `${p.text}, again` }));
    const [first, second] = await withRoundWorkers(env, deps, async () => {
      const first = await (await client.startRound(base, { workflowId })).result();
      const second = await (await client.startRound({ ...base, prompts: changed }, { workflowId })).result();
      return [first, second];
    });
    expect(second.root).not.toBe(first.root);
    for (const { manifest } of second.samples) {
      expect(manifest.startsWith(`${second.root}/`)).toBe(true);
      const sampled = await getJson<SampleManifest>(deps.store, manifest);
      for (const prompt of sampled.prompts) expect(prompt.text).toMatch(/, again$/);
      for (const image of sampled.images) expect(image.key.startsWith(`${second.root}/`)).toBe(true);
    }
  });
});
