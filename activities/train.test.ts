/**
 * The train activity's control of its child process, with a stand-in that speaks the trainer's
 * protocol (the real trainer's own tests cover training; here it is process control), and its
 * checkpoints in the store, with the stand-in and once with the real trainer.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import sharp from 'sharp';
import { describe, expect, it, vi } from 'vitest';

import { validateRoundInput, type RoundInput } from '../config/round.js';
import { PYTHON, REPO_ROOT, testGenerator } from '../models/testing/python.js';
import { LocalFolderStore } from '../store/local.js';
import { getJson, putJson, type ArtifactStore } from '../store/store.js';
import { runActivity, storedInput } from '../test/activity.js';
import type { ActivityDependencies } from './dependencies.js';
import { ModelRuntime } from './runtime.js';
import { createTrainLora } from './train.js';
import { artifactKeys, roundRoot, trainingRoot } from '../contract/keys.js';
import { teamArguments, trainerArguments, trainerEnvironment } from './trainer/arguments.js';
import { readTrainerEvent } from './trainer/events.js';
import type { StageProgress } from '../contract/progress.js';
import { workerMetrics } from '../workers/dependencies.js';

const STANDIN = resolve(import.meta.dirname, '..', 'test', 'fixtures', 'protocolTrainer.mjs');

function roundInput(lora: Record<string, unknown> = { maxSteps: 3, rank: 8 }, generator = '/models/generator'): RoundInput {
  const result = validateRoundInput({
    generator: { base: generator },
    judge: { detector: '/models/detector', clip: '/models/clip' },
    prompts: [{ className: 'circle', text: 'a red circle' }],
    evaluation: { prompts: [{ className: 'circle', text: 'a blue circle' }] },
    lora,
  });
  if (!result.ok) throw new Error('bad test input');
  return result.value;
}

async function setup(mode: string, images: readonly Buffer[] = [Buffer.from('png')]) {
  const scratch = await mkdtemp(join(tmpdir(), 'train-activity-'));
  const store = new LocalFolderStore(join(scratch, 'store'));
  const deps: ActivityDependencies = {
    store,
    runtime: new ModelRuntime('cpu'),
    trainer: { command: [process.execPath, STANDIN], cwd: scratch, env: { STANDIN_MODE: mode }, stopGraceMs: 2000, address: '127.0.0.1' },
    device: 'cpu',
    threads: 1,
    workDir: join(scratch, 'work'),
    allowedPaths: null,
    metrics: workerMetrics(),
  };
  const root = roundRoot('wf/1', 'run-1', 1);
  const keys = images.map((_, i) => artifactKeys.datasetImage(root, i, 0));
  const rows = keys.map((key, i) => JSON.stringify({ file_name: key.slice(artifactKeys.dataset(root).length), text: `a shape of kind ${i}` }));
  for (const [i, image] of images.entries()) await store.put(keys[i]!, image);
  await store.put(artifactKeys.datasetMetadata(root), `${rows.join('\n')}\n`);
  const output = join(deps.workDir, ...root.split('/'), 'train', 'output');
  /** The activity on these dependencies with more trainer environment (the stand-in's modes). */
  const trainWith = (env: Record<string, string>) => createTrainLora({ ...deps, trainer: { ...deps.trainer, env: { ...deps.trainer.env, ...env } } });
  return { deps, root, store, output, train: createTrainLora(deps), trainWith };
}

/**
 * The real trainer, `python -m <launch...> loratrain --skip-onnx` (no export: what these tests
 * check is in the LoRA and its metrics), on one OpenMP thread unless `env` says otherwise.
 */
function realTrainer({
  launch = [],
  stopGraceMs = 30_000,
  env = { OMP_NUM_THREADS: '1' },
}: { launch?: string[]; stopGraceMs?: number; env?: Record<string, string> } = {}) {
  return {
    command: [PYTHON, '-m', ...launch, ...(launch.length > 0 ? ['-m'] : []), 'loratrain', '--skip-onnx'],
    cwd: join(REPO_ROOT, 'python'),
    env: { PYTHONPATH: join(REPO_ROOT, 'python'), ...env },
    stopGraceMs,
    address: '127.0.0.1',
  };
}

/** Runs the activity, keeping the trainer steps (and the step counts) its heartbeats report, and the warnings it logs. */
async function trainRecording(train: ReturnType<typeof createTrainLora>, input: RoundInput, root: string, store: ArtifactStore) {
  const warnings: string[] = [];
  const logger = new DefaultLogger('WARN', (entry) => {
    if (entry.level === 'WARN') warnings.push(entry.message);
  });
  const env = new MockActivityEnvironment(undefined, { logger });
  const steps: number[] = [];
  const totals = new Set<number | undefined>();
  env.on('heartbeat', (d: StageProgress) => {
    if (d.trainerStep !== undefined) steps.push(d.trainerStep);
    if (d.trainerStep !== undefined) totals.add(d.trainerSteps);
  });
  const outcome = await runActivity(env, train, { root, inputKey: await storedInput(store, root, input), dataset: artifactKeys.dataset(root) }).catch(
    (error: unknown) => error,
  );
  return { outcome, steps, totals, warnings };
}

/** The store's deletions and file uploads, in order. */
function recordWrites(store: LocalFolderStore): string[] {
  const writes: string[] = [];
  const [remove, putFile] = [store.delete.bind(store), store.putFile.bind(store)];
  store.delete = async (key) => {
    writes.push(`delete ${key}`);
    await remove(key);
  };
  store.putFile = async (key, source) => {
    writes.push(`putFile ${key}`);
    await putFile(key, source);
  };
  return writes;
}

interface StoredCheckpoint {
  readonly step: number;
  readonly folder: string;
  readonly files: readonly string[];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('trainLora', () => {
  it('turns progress lines into heartbeats, uploads the outputs, then the manifest, and returns it on a retry', async () => {
    const { root, store, train } = await setup('finish');
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const result = await runActivity(env, train, { root, inputKey: await storedInput(store, root, roundInput()), dataset: artifactKeys.dataset(root) });
    expect(result).toMatchObject({ lora: artifactKeys.lora(root), steps: 3, finalLoss: 0.25 });
    expect(beats).toContainEqual({ stage: 'train', trainerStep: 2, trainerSteps: 3, loss: 0.5 });
    expect(await store.list(artifactKeys.lora(root))).toEqual(
      ['metrics.json', 'pytorch_lora_weights.safetensors', 'trainer.log', 'unet/model.onnx'].map((f) => `${artifactKeys.lora(root)}${f}`),
    );
    // The trainer's stderr, whole (beyond what a failure message keeps), beside the LoRA.
    const log = (await store.get(`${artifactKeys.lora(root)}trainer.log`)).toString().trim().split('\n');
    expect(log).toHaveLength(100);
    expect(log[0]).toMatch(/^warning 1 of 100: -{60}$/);
    expect(log.at(-1)).toMatch(/^warning 100 of 100: /);
    expect(await store.exists(artifactKeys.trainManifest(root))).toBe(true);
    // The manifest is found: no second training.
    const again = new MockActivityEnvironment();
    const started: unknown[] = [];
    again.on('heartbeat', (d: unknown) => started.push(d));
    expect(
      await runActivity(again, train, { root, inputKey: await storedInput(store, root, roundInput()), dataset: artifactKeys.dataset(root) }),
    ).toMatchObject(result);
    expect(started).toEqual([]);
  });

  it('trains one of several LoRAs with its own trainer seed, in its own folder and under its own keys', async () => {
    const { deps, root, store, train } = await setup('finish');
    const inputKey = await storedInput(store, root, roundInput({ maxSteps: 3, seed: 10, seeds: 2 }));
    const request = { root, inputKey, dataset: artifactKeys.dataset(root) };
    const results = [];
    for (const seed of [10, 11]) results.push(await runActivity(new MockActivityEnvironment(), train, { ...request, seed }));
    for (const [i, seed] of [10, 11].entries()) {
      const at = trainingRoot(root, seed);
      expect(results[i]).toMatchObject({ manifest: artifactKeys.trainManifest(at), lora: artifactKeys.lora(at), seed });
      expect(await store.list(`${artifactKeys.lora(at)}unet/`)).toEqual([`${artifactKeys.lora(at)}unet/model.onnx`]);
      const args = JSON.parse(await readFile(join(deps.workDir, ...at.split('/'), 'train', 'output', 'args.json'), 'utf8')) as string[];
      expect(args[args.indexOf('--seed') + 1]).toBe(String(seed));
    }
    // The round's own keys stay free: a round of one LoRA would find nothing there.
    expect(await store.exists(artifactKeys.trainManifest(root))).toBe(false);
  });

  it("gives the trainer none of the worker's own environment, its credentials least of all", async () => {
    const { root, output, train, store } = await setup('finish');
    vi.stubEnv('S3_SECRET_KEY', 'worker-secret');
    vi.stubEnv('TEMPORAL_ADDRESS', 'temporal:7233');
    try {
      await runActivity(new MockActivityEnvironment(), train, {
        root,
        inputKey: await storedInput(store, root, roundInput()),
        dataset: artifactKeys.dataset(root),
      });
    } finally {
      vi.unstubAllEnvs();
    }
    const seen = JSON.parse(await readFile(join(output, 'env.json'), 'utf8')) as string[];
    expect(seen).toEqual(expect.arrayContaining(['PATH', 'STANDIN_MODE', 'CUDA_VISIBLE_DEVICES']));
    expect(seen).not.toContain('S3_SECRET_KEY');
    expect(seen).not.toContain('TEMPORAL_ADDRESS');
  });

  it('stops the running trainer on cancellation and publishes nothing', async () => {
    const { root, store, output, train } = await setup('run');
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: StageProgress) => {
      if (d.trainerStep !== undefined) env.cancel();
    });
    const error = await runActivity(env, train, { root, inputKey: await storedInput(store, root, roundInput()), dataset: artifactKeys.dataset(root) }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CancelledFailure);
    const pid = Number(await readFile(join(output, 'pid'), 'utf8'));
    expect(isAlive(pid)).toBe(false);
    expect(await store.list(artifactKeys.lora(root))).toEqual([]);
    expect(existsSync(store.locate(artifactKeys.trainManifest(root)))).toBe(false);
  });

  it('starts no trainer when cancelled before it starts', async () => {
    const { root, output, train, store } = await setup('run');
    const env = new MockActivityEnvironment();
    env.once('heartbeat', () => env.cancel());
    expect(
      await runActivity(env, train, { root, inputKey: await storedInput(store, root, roundInput()), dataset: artifactKeys.dataset(root) }).catch(
        (e: unknown) => e,
      ),
    ).toBeInstanceOf(CancelledFailure);
    expect(existsSync(join(output, 'pid'))).toBe(false);
  });

  it('stops a trainer orphaned by a killed worker before the retry trains into the same folder', async () => {
    const { root, output, train, store } = await setup('finish');
    await mkdir(output, { recursive: true });
    const orphan = spawn(process.execPath, [STANDIN, '--output', output], {
      env: { ...process.env, STANDIN_MODE: 'run' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await writeFile(join(output, 'trainer.pid'), String(orphan.pid));
    const gone = new Promise((done) => orphan.once('exit', (code) => done(code)));
    // Its first event comes after it has set up its SIGTERM handling.
    await new Promise((started) => orphan.stdout.once('data', started));
    expect(
      await runActivity(new MockActivityEnvironment(), train, {
        root,
        inputKey: await storedInput(store, root, roundInput()),
        dataset: artifactKeys.dataset(root),
      }),
    ).toMatchObject({
      steps: 3,
    });
    expect(await gone).toBe(143);
    expect(existsSync(join(output, 'trainer.pid'))).toBe(false);
  });

  it('fails without retry when the trainer refuses its input, with its message', async () => {
    const { root, train, store } = await setup('bad-input');
    const error = await runActivity(new MockActivityEnvironment(), train, {
      root,
      inputKey: await storedInput(store, root, roundInput()),
      dataset: artifactKeys.dataset(root),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toMatchObject({ type: 'BadTrainingInput', nonRetryable: true, message: expect.stringContaining('metadata.jsonl line 3') });
  });

  it('stores the newest checkpoint as the trainer writes them; a retry on an empty work folder resumes from it and trains what an uninterrupted run does', async () => {
    const input = roundInput({ maxSteps: 9, checkpointEvery: 2 });
    const { root, store, deps, trainWith } = await setup('checkpoints');
    const crashed = await trainRecording(trainWith({ STANDIN_CRASH_AFTER: '7' }), input, root, store);
    expect(crashed.outcome).toMatchObject({ type: 'TrainerFailed' });
    // The failed attempt's stderr is kept, by attempt.
    expect((await store.get(artifactKeys.trainerLog(root, 1))).toString()).toBe('RuntimeError: crashed after step 7\n');
    // Checkpoints 2, 4 and 6 were written; the store keeps the newest, named by latest.json.
    const prefix = artifactKeys.trainerCheckpoint(root, 6);
    expect(await store.list(artifactKeys.trainerCheckpoints(root))).toEqual(
      [...['optimizer.pt', 'pytorch_lora_weights.safetensors', 'state.json'].map((f) => `${prefix}${f}`), artifactKeys.trainerCheckpointPointer(root)].sort(),
    );
    expect(await getJson<StoredCheckpoint>(store, artifactKeys.trainerCheckpointPointer(root))).toMatchObject({ step: 6, folder: prefix });

    // Another worker: nothing local.
    await rm(deps.workDir, { recursive: true });
    const resumed = await trainRecording(trainWith({}), input, root, store);
    expect(resumed.outcome).toMatchObject({ steps: 9 });
    expect(resumed.steps[0]).toBe(6);
    expect(JSON.parse((await store.get(`${artifactKeys.lora(root)}metrics.json`)).toString())).toMatchObject({
      resumed_from: expect.stringContaining('step-00000006'),
    });
    // Published LoRA: the checkpoint is of no more use.
    expect(await store.list(artifactKeys.trainerCheckpoints(root))).toEqual([]);

    const reference = await setup('checkpoints');
    const uninterrupted = await trainRecording(reference.train, input, reference.root, reference.store);
    expect(uninterrupted.steps[0]).toBe(0);
    // Checkpoint lines carry no step count; no heartbeat may say there are none (the CLI would show "starting").
    expect([...uninterrupted.totals]).toEqual([9]);
    const weights = (s: LocalFolderStore, r: string) => s.get(`${artifactKeys.lora(r)}pytorch_lora_weights.safetensors`);
    expect((await weights(store, root)).equals(await weights(reference.store, reference.root))).toBe(true);
  });

  it('never names in the store a checkpoint the trainer deleted before it was copied', async () => {
    const { root, store, trainWith } = await setup('checkpoints');
    const { outcome } = await trainRecording(
      trainWith({ STANDIN_VANISH: '2', STANDIN_CRASH_AFTER: '3' }),
      roundInput({ maxSteps: 9, checkpointEvery: 2 }),
      root,
      store,
    );
    expect(outcome).toMatchObject({ type: 'TrainerFailed' });
    // The copy finds the announced folder gone: nothing names it and nothing of it is left.
    expect(await store.list(artifactKeys.trainerCheckpoints(root))).toEqual([]);
  });

  it('discards a stored checkpoint the trainer cannot read, warns, and trains from step 0 in the same attempt', async () => {
    const input = roundInput({ maxSteps: 9, checkpointEvery: 4 });
    const { root, store, train } = await setup('checkpoints');
    // Stored as the activity stores one: its files, then latest.json naming them.
    const prefix = artifactKeys.trainerCheckpoint(root, 6);
    const files = {
      'optimizer.pt': 'moments after 6',
      'pytorch_lora_weights.safetensors': '[1,2,3,4,5,6]',
      'state.json': JSON.stringify({ step: 6, taken: [1, 2, 3, 4, 5, 6], corrupt: true }),
    };
    for (const [file, body] of Object.entries(files)) await store.put(`${prefix}${file}`, body);
    const pointer = artifactKeys.trainerCheckpointPointer(root);
    await putJson(store, pointer, { step: 6, folder: prefix, files: Object.keys(files) });
    const writes = recordWrites(store);

    const { outcome, steps, warnings } = await trainRecording(train, input, root, store);
    expect(outcome).toMatchObject({ steps: 9 });
    expect(warnings).toEqual([expect.stringMatching(/^trainer checkpoint is corrupt, .* starts over from step 0: checkpoint .*step-00000006: optimizer\.pt/)]);
    // Pointer first, then the files it named, all before the new run stores its first checkpoint.
    expect(writes.slice(0, 5)).toEqual([
      `delete ${pointer}`,
      ...Object.keys(files).map((file) => `delete ${prefix}${file}`),
      `putFile ${artifactKeys.trainerCheckpoint(root, 4)}optimizer.pt`,
    ]);
    expect(steps[0]).toBe(0);
    expect(JSON.parse((await store.get(`${artifactKeys.lora(root)}pytorch_lora_weights.safetensors`)).toString())).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(JSON.parse((await store.get(`${artifactKeys.lora(root)}metrics.json`)).toString())).toEqual({ resumed_from: null });
    expect(await store.list(artifactKeys.trainerCheckpoints(root))).toEqual([]);
  });

  it('fails without retry when the trainer refuses its checkpoint again after a fresh start', async () => {
    const { root, output, train, store } = await setup('bad-checkpoint');
    const { outcome, warnings } = await trainRecording(train, roundInput(), root, store);
    expect(outcome).toBeInstanceOf(ApplicationFailure);
    expect(outcome).toMatchObject({ type: 'BadTrainingInput', nonRetryable: true, message: expect.stringContaining('optimizer.pt: cannot be read') });
    // The other warning is the SDK's "Activity failed".
    expect(warnings.filter((warning) => warning.startsWith('trainer checkpoint is corrupt'))).toHaveLength(1);
    // Once, then once more from step 0: no loop.
    expect((await readFile(join(output, 'starts'), 'utf8')).split('\n').filter(Boolean)).toHaveLength(2);
  });

  it(
    'with the real trainer, a retry on an empty work folder resumes at the stored step and trains what an uninterrupted run trains',
    { timeout: 600_000 },
    async () => {
      const images = await Promise.all(
        [
          [200, 30, 30],
          [30, 30, 200],
          [30, 160, 30],
        ].map(([r, g, b]) =>
          sharp({ create: { width: 64, height: 64, channels: 3, background: { r: r!, g: g!, b: b! } } })
            .png()
            .toBuffer(),
        ),
      );
      const reference = await setup('real', images);
      const input = roundInput({ maxSteps: 12, batchSize: 2, checkpointEvery: 4 }, await testGenerator(join(reference.deps.workDir, '..')));
      // No ONNX export: the LoRA weights and the loss curve are what resuming must reproduce.
      const trainer = realTrainer();
      const real = (deps: ActivityDependencies) => createTrainLora({ ...deps, trainer });

      const uninterrupted = await trainRecording(real(reference.deps), input, reference.root, reference.store);
      expect(uninterrupted.outcome).toMatchObject({ steps: 12 });

      const { root, store, deps, output } = await setup('real', images);
      const killed = trainRecording(real(deps), input, root, store);
      // A worker dies once a checkpoint is stored: its trainer goes with it.
      await until(() => store.exists(artifactKeys.trainerCheckpointPointer(root)), 240_000);
      process.kill(Number(await readFile(join(output, 'trainer.pid'), 'utf8')), 'SIGKILL');
      expect((await killed).outcome).toMatchObject({ type: 'TrainerFailed' });
      const stored = await getJson<StoredCheckpoint>(store, artifactKeys.trainerCheckpointPointer(root));
      expect(stored.step).toBeGreaterThan(0);

      await rm(deps.workDir, { recursive: true });
      const resumed = await trainRecording(real(deps), input, root, store);
      expect(resumed.outcome).toMatchObject({ steps: 12 });
      expect(resumed.steps[0]).toBe(stored.step);
      const metrics = async (s: LocalFolderStore, r: string) =>
        JSON.parse((await s.get(`${artifactKeys.lora(r)}metrics.json`)).toString()) as { loss_curve: number[]; resumed_from: string | null };
      const [want, got] = [await metrics(reference.store, reference.root), await metrics(store, root)];
      expect(got.resumed_from).toContain(`step-${String(stored.step).padStart(8, '0')}`);
      // The trainer reproduces an uninterrupted run to float rounding (its own tests hold it to 1e-6).
      expect(got.loss_curve).toHaveLength(12);
      got.loss_curve.forEach((loss, i) => expect(loss).toBeCloseTo(want.loss_curve[i]!, 6));
      const weights = async (s: LocalFolderStore, r: string) => safetensors(await s.get(`${artifactKeys.lora(r)}pytorch_lora_weights.safetensors`));
      const [a, b] = [await weights(reference.store, reference.root), await weights(store, root)];
      expect([...b.keys()]).toEqual([...a.keys()]);
      expect(Math.max(...[...a].map(([name, values]) => maxAbsDifference(values, b.get(name)!)))).toBeLessThan(1e-6);
      expect(await store.list(artifactKeys.trainerCheckpoints(root))).toEqual([]);
    },
  );

  it('stops a real trainer that makes no step for lora.stallSeconds as hung, and fails to be retried', { timeout: 300_000 }, async () => {
    const { deps, root, store, output } = await setup('real', [
      await sharp({ create: { width: 64, height: 64, channels: 3, background: '#0c0' } })
        .png()
        .toBuffer(),
    ]);
    const input = roundInput({ maxSteps: 5000, batchSize: 1, stallSeconds: 5 }, await testGenerator(join(deps.workDir, '..')));
    // A stop grace far longer than the stall: a trainer that made no step in `stallSeconds` gets no longer than that again.
    const trainer = realTrainer({ stopGraceMs: 120_000 });
    const warnings: string[] = [];
    const env = new MockActivityEnvironment(undefined, {
      logger: new DefaultLogger('WARN', (entry) => {
        if (entry.level === 'WARN') warnings.push(entry.message);
      }),
    });
    // A trainer frozen mid-training, as one blocked in a collective whose peer vanished is.
    let frozen: number | null = null;
    let frozenAt = 0;
    env.on('heartbeat', (d: StageProgress) => {
      if (frozen !== null || (d.trainerStep ?? 0) < 1) return;
      frozen = 0;
      void readFile(join(output, 'trainer.pid'), 'utf8').then((pid) => {
        frozen = Number(pid);
        process.kill(frozen, 'SIGSTOP');
        frozenAt = performance.now();
      });
    });
    const outcome = await runActivity(env, createTrainLora({ ...deps, trainer }), {
      root,
      inputKey: await storedInput(store, root, input),
      dataset: artifactKeys.dataset(root),
    }).catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(ApplicationFailure);
    expect(outcome).toMatchObject({ type: 'TrainerStalled', nonRetryable: false });
    expect((outcome as ApplicationFailure).message).toMatch(/no step for 5 s after step \d+ \(lora.stallSeconds\)/);
    expect(warnings.some((w) => w.includes('stopped as hung'))).toBe(true);
    expect(frozen).toBeGreaterThan(0);
    expect(isAlive(frozen!)).toBe(false);
    // 5 s without a step, then 5 s for SIGTERM, which a frozen process never acts on, before SIGKILL.
    expect(performance.now() - frozenAt).toBeLessThan(60_000);
  });

  it('runs the real trainer on the worker’s thread count (SELF_REWARD_THREADS), whatever its own default', { timeout: 300_000 }, async () => {
    const { deps, root, store } = await setup('real', [
      await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c00' } })
        .png()
        .toBuffer(),
    ]);
    const input = roundInput({ maxSteps: 2, batchSize: 1 }, await testGenerator(join(deps.workDir, '..')));
    // No OMP_NUM_THREADS of its own: the worker's thread count sets it.
    const trainer = realTrainer({ env: {} });
    // Three: not what torch would pick by itself on a machine of one, two or four cores.
    const { outcome } = await trainRecording(createTrainLora({ ...deps, threads: 3, trainer }), input, root, store);
    expect(outcome).toMatchObject({ steps: 2 });
    expect(JSON.parse((await store.get(`${artifactKeys.lora(root)}metrics.json`)).toString())).toMatchObject({ threads: 3 });
  });

  it('trains with bf16, gradient checkpointing and 8-bit AdamW when the input asks for them (the real trainer, 2 steps)', { timeout: 300_000 }, async () => {
    const { deps, root, store } = await setup('real', [
      await sharp({ create: { width: 64, height: 64, channels: 3, background: '#0c0' } })
        .png()
        .toBuffer(),
    ]);
    const input = roundInput(
      { maxSteps: 2, batchSize: 1, mixedPrecision: 'bf16', gradientCheckpointing: true, optimizer: 'adamw8bit' },
      await testGenerator(join(deps.workDir, '..')),
    );
    const trainer = realTrainer();
    const { outcome } = await trainRecording(createTrainLora({ ...deps, trainer }), input, root, store);
    expect(outcome).toMatchObject({ steps: 2 });
    const metrics = JSON.parse((await store.get(`${artifactKeys.lora(root)}metrics.json`)).toString()) as {
      mixed_precision: string;
      gradient_checkpointing: boolean;
      optimizer: string;
      loss_curve: number[];
    };
    expect(metrics.mixed_precision).toBe('bf16');
    expect(metrics.gradient_checkpointing).toBe(true);
    expect(metrics.optimizer).toBe('adamw8bit');
    expect(metrics.loss_curve).toHaveLength(2);
    metrics.loss_curve.forEach((loss) => expect(Number.isFinite(loss)).toBe(true));
  });

  it.each([
    ['torchrun', ['torch.distributed.run', '--standalone', '--nproc_per_node', '2']],
    ['accelerate launch', ['accelerate.commands.launch', '--multi_gpu', '--num_processes', '2']],
  ])('trains data-parallel under a launcher of two processes (%s), and a refusal there is still bad input', { timeout: 300_000 }, async (_, launch) => {
    const green = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#0c0' } })
      .png()
      .toBuffer();
    const { deps, root, store } = await setup('real', [green, green]);
    const generator = await testGenerator(join(deps.workDir, '..'));
    // The trainer command as SELF_REWARD_TRAINER gives it: the launcher starts `-m loratrain` twice.
    const trainer = realTrainer({ launch });
    const { outcome } = await trainRecording(createTrainLora({ ...deps, trainer }), roundInput({ maxSteps: 2, batchSize: 2 }, generator), root, store);
    expect(outcome).toMatchObject({ steps: 2 });
    const metrics = JSON.parse((await store.get(`${artifactKeys.lora(root)}metrics.json`)).toString()) as { processes: number; loss_curve: number[] };
    expect(metrics.processes).toBe(2);
    expect(metrics.loss_curve).toHaveLength(2);
    // The launcher exits 1 whatever its processes did: the refusal is read from the trainer's error event.
    const other = roundRoot('wf/2', 'run-1', 1);
    for (const key of await store.list(artifactKeys.dataset(root))) await store.put(key.replace(root, other), await store.get(key));
    const refused = await trainRecording(createTrainLora({ ...deps, trainer }), roundInput({ maxSteps: 2, resolution: 30 }, generator), other, store);
    expect(refused.outcome).toMatchObject({
      type: 'BadTrainingInput',
      nonRetryable: true,
      message: expect.stringContaining('--resolution: must be a multiple'),
    });
  });

  it('tells a trainer of several workers whether it leads the team or joins the leader, and how long to wait', () => {
    expect(teamArguments({ lead: 4 }, 60)).toEqual(['--team-size', '4', '--team-wait', '60']);
    expect(teamArguments({ join: '10.0.0.7:41234' }, 2.5)).toEqual(['--team-leader', '10.0.0.7:41234', '--team-wait', '2.5']);
  });

  it("passes the LoRA settings, resumes from the latest checkpoint, pins the device and sizes the trainer's threads", () => {
    const args = trainerArguments(roundInput().lora, { generator: 'g', dataset: 'd', output: 'o' }, 'cuda:3', 6);
    expect(args.join(' ')).toContain('--rank 8');
    expect(args.join(' ')).toContain('--max-steps 3');
    expect(args.join(' ')).toContain('--lr-scheduler constant');
    expect(args.join(' ')).toContain('--resume-from latest');
    expect(args.join(' ')).toContain('--snr-gamma 0 --caption-dropout 0');
    expect(args.join(' ')).toContain('--device cuda --threads 6');
    // The precision is always passed (the trainer's default is the input's default); checkpointing only when asked for.
    expect(args.join(' ')).toContain('--mixed-precision no');
    expect(args).not.toContain('--gradient-checkpointing');
    expect(args.join(' ')).toContain('--export-precision fp32');
    expect(args.join(' ')).toContain('--optimizer adamw');
    const gpu = trainerArguments(
      roundInput({ maxSteps: 3, mixedPrecision: 'bf16', gradientCheckpointing: true, optimizer: 'adamw8bit', exportPrecision: 'fp16' }).lora,
      { generator: 'g', dataset: 'd', output: 'o' },
      'cuda:0',
      6,
    );
    expect(gpu.join(' ')).toContain('--mixed-precision bf16 --gradient-checkpointing --optimizer adamw8bit --export-precision fp16');
    const threads = { OMP_NUM_THREADS: '6', MKL_NUM_THREADS: '6' };
    expect(trainerEnvironment('cuda:3', 6, {})).toEqual({ ...threads, CUDA_VISIBLE_DEVICES: '3' });
    expect(trainerEnvironment('cpu', 6, {})).toEqual({ ...threads, CUDA_VISIBLE_DEVICES: '' });
    // Only what a Python program needs of the worker's environment, never its credentials.
    const worker = {
      PATH: '/usr/bin',
      HF_HOME: '/cache',
      OMP_NUM_THREADS: '2',
      S3_SECRET_KEY: 'secret',
      TEMPORAL_ADDRESS: 't:7233',
      AWS_SECRET_ACCESS_KEY: 'aws',
    };
    // The worker's thread count is the trainer's, whatever the worker's own OpenMP settings say.
    expect(trainerEnvironment('cuda:1', 6, { ...worker, OMP_WAIT_POLICY: 'ACTIVE' })).toEqual({
      PATH: '/usr/bin',
      HF_HOME: '/cache',
      OMP_WAIT_POLICY: 'ACTIVE',
      ...threads,
      CUDA_VISIBLE_DEVICES: '1',
    });
  });
});

async function until(probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The float32 tensors of a safetensors file (8-byte header length, JSON header, data). */
function safetensors(bytes: Buffer): Map<string, Float32Array> {
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const tensors = new Map<string, Float32Array>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const {
      dtype,
      data_offsets: [start, end],
    } = entry;
    if (dtype !== 'F32') throw new Error(`${name}: ${dtype}, expected F32`);
    // Copied: the data need not be 4-byte aligned within the buffer.
    tensors.set(name, new Float32Array(Uint8Array.from(bytes.subarray(8 + length + start, 8 + length + end)).buffer));
  }
  return new Map([...tensors].sort(([x], [y]) => x.localeCompare(y)));
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

describe('readTrainerEvent', () => {
  it("reads the trainer's lines, a diverged loss sent as a string included, and nothing else", () => {
    expect(readTrainerEvent('{"event": "step", "step": 3, "total": 9, "loss": 0.25, "elapsed": 1.0}')).toMatchObject({ event: 'step', step: 3, loss: 0.25 });
    expect(readTrainerEvent('{"event": "step", "step": 4, "total": 9, "loss": "NaN", "elapsed": 1.1}')?.loss).toBeNaN();
    expect(readTrainerEvent('{"event": "done", "final_loss": "Infinity", "elapsed": 2}')?.final_loss).toBe(Infinity);
    expect(readTrainerEvent('Traceback (most recent call last):')).toBeNull();
    expect(readTrainerEvent('[1, 2]')).toBeNull();
    expect(readTrainerEvent('{"step": 3}')).toBeNull();
  });
});
