/**
 * Workers that die mid-round. A tiny round runs undisturbed, then the same round (same input,
 * another workflow id) while its worker process is killed outright (SIGKILL) once during
 * sampling and once during training, each time replaced by a fresh worker process with an empty
 * work folder (as if on another machine). The round must complete with the same dataset and the
 * same artifacts as the undisturbed one, the training must resume from the checkpoint the store
 * holds, and no trainer may outlive its worker. Real worker entry points as child processes, the
 * real trainer, a real local Temporal dev server; short heartbeat timeouts so retries come soon.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { pngChunks, readText } from '../models/png.js';
import { testGenerator } from '../models/testing/python.js';
import { LocalFolderStore } from '../store/local.js';
import { testDetector, tinyRoundInput } from './models.js';
import { requireBinary, TEMPORAL_CLI } from './servers.js';
import { processesMentioning, until, WorkerProcess } from './workerProcess.js';
import { artifactKeys, roundRoot } from '../contract/keys.js';
import { TASK_QUEUES } from '../contract/workers.js';
import type { RoundResult } from '../contract/workflows.js';

let env: TestWorkflowEnvironment;
let scratch: string;
let store: LocalFolderStore;
let roundInput: Record<string, unknown>;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'crash-'));
  const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
  env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: requireBinary(TEMPORAL_CLI) }, searchAttributes: Object.values(SEARCH_ATTRIBUTES) },
  });
  store = new LocalFolderStore(join(scratch, 'store'));
  roundInput = tinyRoundInput(generator, detector, {
    sampling: { steps: 4 },
    lora: { maxSteps: 20, batchSize: 2, checkpointEvery: 4 },
    // Six training prompts a shard (one score record each), so judging is still running when the kill after its first record lands.
    prompts: [
      { className: 'circle', text: 'one red circle on a white background' },
      { className: 'square', text: 'two blue squares on a black background' },
      { className: 'triangle', text: 'one green triangle on a grey background' },
      { className: 'circle', text: 'two purple circles on a black background' },
      { className: 'square', text: 'one orange square on a white background' },
      { className: 'triangle', text: 'three yellow triangles on a black background' },
      { className: 'circle', text: 'three green circles on a grey background' },
      { className: 'square', text: 'three red squares on a grey background' },
      { className: 'triangle', text: 'two blue triangles on a white background' },
      { className: 'circle', text: 'one yellow circle on a black background' },
      { className: 'square', text: 'two green squares on a white background' },
      { className: 'triangle', text: 'one orange triangle on a grey background' },
    ],
    // Enough held-out prompts that the evaluation is still running when the kill after its first image lands.
    evaluation: {
      prompts: [
        { className: 'circle', text: 'two yellow circles on a white background' },
        { className: 'square', text: 'one red square on a white background' },
        { className: 'triangle', text: 'three blue triangles on a white background' },
        { className: 'circle', text: 'one green circle on a white background' },
        { className: 'square', text: 'two orange squares on a white background' },
        { className: 'triangle', text: 'one purple triangle on a white background' },
      ],
      seedsPerPrompt: 2,
      bootstrapResamples: 100,
    },
    // The shortest the schema allows: a dead worker's activity is retried 15 s after its last heartbeat.
    activities: { heartbeatTimeoutSeconds: 15, maximumAttempts: 5 },
  });
});

afterAll(async () => {
  await WorkerProcess.stopAll();
  await env?.teardown();
});

const startWorker = (name: string) => WorkerProcess.start(join(scratch, `work-${name}`), { TEMPORAL_ADDRESS: env.address, SELF_REWARD_STORE: store.root });

/** Hidden files under a folder: the local store's temporaries, which a crash mid-write would leave. */
async function hiddenFiles(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true });
  return entries.filter((path) => path.split('/').some((segment) => segment.startsWith('.')));
}

/** Keys under a round, relative to it. */
async function roundKeys(root: string): Promise<string[]> {
  return (await store.list(`${root}/`)).map((key) => key.slice(root.length + 1));
}

async function runRound(workflowId: string) {
  return env.client.workflow.start('selfRewardRound', { taskQueue: TASK_QUEUES.workflows, workflowId, args: [roundInput] });
}

interface Metrics {
  readonly loss_curve: readonly number[];
  readonly resumed_from: string | null;
}

let reference: RoundResult;
let first: WorkerProcess;

describe('a round whose workers are killed', () => {
  it('runs undisturbed first', { timeout: 600_000 }, async () => {
    first = await startWorker('first');
    reference = (await (await runRound(`crash-reference-${randomUUID()}`)).result()) as RoundResult;
    expect(reference.training.steps).toBe(20);
  });

  it(
    'completes after SIGKILLs while sampling and while training, with the same dataset, the same artifacts and no surviving trainer',
    { timeout: 900_000 },
    async () => {
      expect(reference, 'the undisturbed round ran').toBeDefined();
      const workflowId = `crash-${randomUUID()}`;
      const handle = await runRound(workflowId);
      const root = roundRoot(workflowId, handle.firstExecutionRunId, 1);
      const sampleManifests = [0, 1].map((shard) => artifactKeys.sampleManifest(root, shard));

      // Sampling: the first image is stored, the shards are not done.
      await until(async () => (await store.list(`${root}/samples/`)).some((key) => key.endsWith('.png')), 300_000, 'first sampled image');
      await first.kill();
      const sampledManifests = await Promise.all(sampleManifests.map((key) => store.exists(key)));
      expect(sampledManifests, 'killed before both shards were sampled').toContain(false);
      const training = await startWorker('second');

      // Training: a checkpoint is stored, the LoRA is not.
      await until(() => store.exists(artifactKeys.trainerCheckpointPointer(root)), 600_000, 'stored trainer checkpoint');
      expect(await processesMentioning(training.workDir), 'its trainer runs').not.toEqual([]);
      await training.kill();
      expect(await store.exists(artifactKeys.trainManifest(root)), 'killed before the LoRA was published').toBe(false);
      // Its trainer notices its parent's death (stdin closes), checkpoints and exits.
      await until(async () => (await processesMentioning(training.workDir)).length === 0, 60_000, "the killed worker's trainer to exit");
      const last = await startWorker('third');

      const result = (await handle.result()) as RoundResult;
      expect(result.training.steps).toBe(20);

      // The training resumed from the stored checkpoint on the fresh worker and trained what the undisturbed round trained.
      const metrics = async (r: RoundResult) => JSON.parse((await store.get(`${r.training.lora}metrics.json`)).toString()) as Metrics;
      const [want, got] = [await metrics(reference), await metrics(result)];
      expect(want.resumed_from).toBeNull();
      expect(got.resumed_from).toMatch(/step-\d{8}$/);
      expect(got.resumed_from).toContain(last.workDir);
      expect(got.loss_curve).toHaveLength(20);
      got.loss_curve.forEach((loss, i) => expect(loss).toBeCloseTo(want.loss_curve[i]!, 6));

      // The same keys, so no duplicate or leftover artifact: one manifest per stage and shard, the
      // stored checkpoint deleted once the LoRA was published, and no hidden temporary file.
      const keys = await roundKeys(result.root);
      expect(keys).toEqual(await roundKeys(reference.root));
      expect(keys.filter((key) => key.startsWith('trainer-checkpoint/'))).toEqual([]);
      expect(keys.filter((key) => /^[a-z]+\.json$|^[a-z]+\/shard-\d+\.json$/.test(key))).toEqual([
        'dataset.json',
        'evaluation.json',
        'input.json',
        'lora.json',
        'samples/shard-000.json',
        'samples/shard-001.json',
        'scores/shard-000.json',
        'scores/shard-001.json',
      ]);
      expect(await hiddenFiles(store.root)).toEqual([]);

      // The same images, byte for byte: the seeds depend on prompt and image index only.
      for (const key of keys.filter((k) => k.endsWith('.png') && (k.startsWith('samples/') || k.startsWith('dataset/')))) {
        expect((await store.get(`${result.root}/${key}`)).equals(await store.get(`${reference.root}/${key}`)), key).toBe(true);
      }
      // The same dataset rows (their source keys differ by the round's folder only).
      const rows = async (r: RoundResult) =>
        (await store.get(artifactKeys.datasetMetadata(r.root)))
          .toString()
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line.replaceAll(`${r.root}/`, '')) as unknown);
      expect(await rows(result)).toEqual(await rows(reference));
      expect(result.dataset).toEqual({ ...reference.dataset, manifest: artifactKeys.curateManifest(result.root), dataset: artifactKeys.dataset(result.root) });
    },
  );
});

describe('a round whose workers are killed in its later stages', () => {
  it('completes after SIGKILLs while judging, while evaluating and as the report is written, with the same artifacts', { timeout: 900_000 }, async () => {
    expect(reference, 'the undisturbed round ran').toBeDefined();
    const workflowId = `crash-late-${randomUUID()}`;
    let worker = await startWorker('judging');
    const handle = await runRound(workflowId);
    const root = roundRoot(workflowId, handle.firstExecutionRunId, 1);

    // Judging: a score record is stored, the shards' judging is not done.
    await until(async () => (await store.list(`${root}/scores/`)).length > 0, 300_000, 'first score record');
    await worker.kill();
    expect(await Promise.all([0, 1].map((shard) => store.exists(artifactKeys.judgeManifest(root, shard))))).toContain(false);
    worker = await startWorker('evaluating');

    // Evaluating: a held-out image is stored, the evaluation is not.
    // The references' images are drawn while the LoRA trains; the tuned generator's, in the evaluation.
    await until(async () => (await store.list(`${root}/evaluation/tuned/`)).length > 0, 600_000, "the tuned generator's first held-out image");
    await worker.kill();
    expect(await store.exists(artifactKeys.evaluateManifest(root))).toBe(false);
    worker = await startWorker('reporting');

    // As the report is written: the evaluation is published; the report may or may not be.
    await until(() => store.exists(artifactKeys.evaluateManifest(root)), 300_000, 'the evaluation');
    await worker.kill();
    await startWorker('last');

    const result = (await handle.result()) as RoundResult;
    expect(await roundKeys(result.root)).toEqual(await roundKeys(reference.root));
    expect(await hiddenFiles(store.root)).toEqual([]);
    // The same images: pixels byte for byte, and the same text but for the tuned UNet's key, which names each round's own LoRA.
    for (const key of (await roundKeys(result.root)).filter((k) => k.endsWith('.png'))) {
      const [got, want] = [await store.get(`${result.root}/${key}`), await store.get(`${reference.root}/${key}`)];
      const pixels = (png: Buffer) => Buffer.concat(pngChunks(png).flatMap((c) => (c.type === 'IDAT' ? [c.data] : [])));
      expect(pixels(got).equals(pixels(want)), key).toBe(true);
      expect(JSON.stringify(readText(got)).replaceAll(result.root, 'ROOT'), key).toBe(JSON.stringify(readText(want)).replaceAll(reference.root, 'ROOT'));
    }
    const figures = ({ manifest: _m, ...rest }: RoundResult['evaluation']) => rest;
    expect(figures(result.evaluation)).toEqual(figures(reference.evaluation));
    expect((await store.get(result.report.report)).toString()).toContain('Tuned beats base in');
  });
});
