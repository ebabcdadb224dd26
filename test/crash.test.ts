/**
 * Workers that die mid-round. A tiny round runs undisturbed, then the same round (same input,
 * another workflow id) while its worker process is killed outright (SIGKILL) once during
 * sampling and once during training, each time replaced by a fresh worker process with an empty
 * work folder (as if on another machine). The round must complete with the same dataset and the
 * same artifacts as the undisturbed one, the training must resume from the checkpoint the store
 * holds, and no trainer may outlive its worker. Real worker entry points as child processes, the
 * real trainer, a real local Temporal dev server; short heartbeat timeouts so retries come soon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { testGenerator } from '../models/testing/python.js';
import { LocalFolderStore } from '../store/local.js';
import { testDetector, tinyRoundInput } from './models.js';
import { REPO_ROOT, requireBinary, TEMPORAL_CLI } from './servers.js';
import { artifactKeys, roundRoot } from '../contract/keys.js';
import { TASK_QUEUES } from '../contract/workers.js';
import type { RoundResult } from '../contract/workflows.js';

let env: TestWorkflowEnvironment;
let scratch: string;
let store: LocalFolderStore;
let roundInput: Record<string, unknown>;
const workers: WorkerProcess[] = [];

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
    // The shortest the schema allows: a dead worker's activity is retried 15 s after its last heartbeat.
    activities: { heartbeatTimeoutSeconds: 15, maximumAttempts: 5 },
  });
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await env?.teardown();
});

/** An all-in-one worker process (`workers/all-in-one.ts`) with a work folder of its own. */
class WorkerProcess {
  readonly workDir: string;
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private output = '';

  private constructor(name: string) {
    this.workDir = join(scratch, `work-${name}`);
    this.child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'workers', 'all-in-one.ts')], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: env.address,
        SELF_REWARD_STORE: store.root,
        SELF_REWARD_WORK_DIR: this.workDir,
        SELF_REWARD_THREADS: '1',
        OMP_NUM_THREADS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((done) => this.child.once('exit', (code, signal) => done(code ?? (signal === null ? null : -1))));
  }

  static async start(name: string): Promise<WorkerProcess> {
    const worker = new WorkerProcess(name);
    workers.push(worker);
    let seen = '';
    const running = new Promise<void>((done) => {
      const watch = (chunk: Buffer) => {
        // Search the whole chunk (plus the last one's tail, for a line split across two)
        // before trimming: a worker that picks up pending work at once logs the RUNNING
        // line and more in one chunk, and trimming first cut the line off and hung here.
        seen += chunk.toString();
        worker.output = (worker.output + chunk.toString()).slice(-20_000);
        if (seen.includes("state: 'RUNNING'")) done();
        seen = seen.slice(-200);
      };
      worker.child.stdout?.on('data', watch);
      worker.child.stderr?.on('data', watch);
    });
    await Promise.race([running, worker.exited]);
    if (worker.child.exitCode !== null) throw new Error(`worker ${name} exited at start:\n${worker.output}`);
    return worker;
  }

  get log(): string {
    return this.output;
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    await this.exited;
  }
}

async function until(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Live processes whose command line mentions `text` (a zombie has an empty one). */
async function processesMentioning(text: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  const commands = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
  return pids.filter((_, i) => commands[i]!.includes(text)).map(Number);
}

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
    first = await WorkerProcess.start('first');
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
      const training = await WorkerProcess.start('second');

      // Training: a checkpoint is stored, the LoRA is not.
      await until(() => store.exists(artifactKeys.trainerCheckpointPointer(root)), 600_000, 'stored trainer checkpoint');
      expect(await processesMentioning(training.workDir), 'its trainer runs').not.toEqual([]);
      await training.kill();
      expect(await store.exists(artifactKeys.trainManifest(root)), 'killed before the LoRA was published').toBe(false);
      // Its trainer notices its parent's death (stdin closes), checkpoints and exits.
      await until(async () => (await processesMentioning(training.workDir)).length === 0, 60_000, "the killed worker's trainer to exit");
      const last = await WorkerProcess.start('third');

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
