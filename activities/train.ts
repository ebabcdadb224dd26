import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

import type { LoraSettings } from '../config/round.js';
import { findJson, putJson } from '../store/store.js';
import type { RoundRequest } from './curate.js';
import { badData, withProgress, type ActivityDependencies, type ProgressReporter } from './dependencies.js';
import { artifactKeys } from './keys.js';
import type { CurateResult, StageProgress, TrainResult } from './types.js';

/** The trainer's flags for a round's LoRA settings. `--resume-from latest` starts fresh when there is no checkpoint. */
export function trainerArguments(lora: LoraSettings, paths: { generator: string; dataset: string; output: string }, device: string): string[] {
  const args = ['--generator', paths.generator, '--dataset', paths.dataset, '--output', paths.output];
  args.push(
    '--rank',
    String(lora.rank),
    '--learning-rate',
    String(lora.learningRate),
    '--lr-scheduler',
    lora.lrScheduler,
    '--batch-size',
    String(lora.batchSize),
    '--seed',
    String(lora.seed),
  );
  args.push(...(lora.maxSteps === null ? ['--epochs', String(lora.epochs)] : ['--max-steps', String(lora.maxSteps)]));
  if (lora.resolution !== null) args.push('--resolution', String(lora.resolution));
  args.push('--snr-gamma', String(lora.snrGamma), '--caption-dropout', String(lora.captionDropout));
  args.push('--checkpoint-every', String(lora.checkpointEvery), '--resume-from', 'latest');
  args.push('--device', device.startsWith('cuda') ? 'cuda' : 'cpu');
  return args;
}

/** The trainer sees only the worker's device, as cuda:0. */
export function trainerEnvironment(device: string): Record<string, string> {
  const index = /^cuda:(\d+)$/.exec(device)?.[1] ?? (device === 'cuda' ? '0' : null);
  return index === null ? { CUDA_VISIBLE_DEVICES: '' } : { CUDA_VISIBLE_DEVICES: index };
}

interface TrainerEvent {
  readonly event: string;
  readonly step?: number;
  readonly total?: number;
  readonly loss?: number;
  readonly final_loss?: number | null;
  readonly phase?: string;
  readonly message?: string;
  /** Of a `checkpoint` event: the folder it was written to. */
  readonly path?: string;
  /** Of a `stopped` event: the checkpoint written on the way out (or resumed from), if any. */
  readonly checkpoint?: string | null;
}

const EXIT_BAD_INPUT = 2;

async function download(deps: ActivityDependencies, prefix: string, folder: string): Promise<void> {
  for (const key of await deps.store.list(prefix)) await deps.store.getFile(key, join(folder, ...key.slice(prefix.length).split('/')));
}

/** Files the trainer leaves in its output folder that the next round and the report need. */
function outputFiles(output: string): string[] {
  const wanted = ['pytorch_lora_weights.safetensors', 'metrics.json', 'unet/model.onnx', 'unet/model.onnx_data', 'unet/config.json'];
  return wanted.filter((file) => existsSync(join(output, file)));
}

const PID_FILE = 'trainer.pid';

/** The trainer's checkpoint folder names (`checkpoints/step-NNNNNNNN`); it counts one complete once it holds `state.json`. */
const CHECKPOINTS = 'checkpoints';
const checkpointName = (step: number) => `step-${String(step).padStart(8, '0')}`;

/** `latest.json` of the stored checkpoint. */
interface StoredCheckpoint {
  readonly step: number;
  /** Key prefix of its files (`artifactKeys.trainerCheckpoint`). */
  readonly folder: string;
  /** Paths relative to the checkpoint folder, `/`-separated. */
  readonly files: readonly string[];
}

/** Files under a local folder as `/`-separated relative paths, sorted. */
async function filesUnder(folder: string, under = ''): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(folder, ...under.split('/')), { withFileTypes: true })) {
    const path = under === '' ? entry.name : `${under}/${entry.name}`;
    if (entry.isDirectory()) found.push(...(await filesUnder(folder, path)));
    else if (entry.isFile()) found.push(path);
  }
  return found.sort();
}

/** The step of the newest complete checkpoint in the trainer's output folder, or null. */
async function newestLocalCheckpoint(output: string): Promise<number | null> {
  const steps: number[] = [];
  for (const name of await readdir(join(output, CHECKPOINTS)).catch(() => [] as string[])) {
    const match = /^step-(\d+)$/.exec(name);
    if (match !== null && existsSync(join(output, CHECKPOINTS, name, 'state.json'))) steps.push(Number(match[1]));
  }
  return steps.length === 0 ? null : Math.max(...steps);
}

/**
 * Deletes the stored checkpoint's files except those under `keep`; with null, all of them and
 * `latest.json` first, so that no reader follows it to files already gone.
 */
async function removeStoredCheckpoints(deps: ActivityDependencies, root: string, keep: string | null): Promise<void> {
  const pointer = artifactKeys.trainerCheckpointPointer(root);
  const keys = await deps.store.list(artifactKeys.trainerCheckpoints(root));
  if (keep === null && keys.includes(pointer)) await deps.store.delete(pointer);
  for (const key of keys) {
    if (key !== pointer && (keep === null || !key.startsWith(keep))) await deps.store.delete(key);
  }
}

/**
 * Stores one complete checkpoint folder: its files, then `latest.json` naming them, then the
 * older checkpoint's files are deleted. A crash at any point leaves `latest.json` naming a whole
 * checkpoint (or none), plus at worst files it does not name, which the next upload or the end
 * of the training removes.
 */
async function storeCheckpoint(deps: ActivityDependencies, root: string, step: number, folder: string): Promise<void> {
  const files = await filesUnder(folder);
  if (!files.includes('state.json')) throw new Error(`${folder}: no state.json, not a complete checkpoint`);
  const prefix = artifactKeys.trainerCheckpoint(root, step);
  try {
    for (const file of files) await deps.store.putFile(`${prefix}${file}`, join(folder, ...file.split('/')));
  } catch (error) {
    // Unnamed files are harmless but useless: the store stays tidy where it can.
    for (const key of await deps.store.list(prefix).catch(() => [])) await deps.store.delete(key).catch(() => undefined);
    throw error;
  }
  const stored: StoredCheckpoint = { step, folder: prefix, files };
  await putJson(deps.store, artifactKeys.trainerCheckpointPointer(root), stored);
  await removeStoredCheckpoints(deps, root, prefix);
}

/**
 * Downloads the stored checkpoint into the trainer's checkpoint folder under a hidden name and
 * renames it into place once whole, so `--resume-from latest` finds it and never half of it
 * (the trainer deletes leftover `.tmp-*` folders itself).
 */
async function restoreCheckpoint(deps: ActivityDependencies, stored: StoredCheckpoint, output: string): Promise<void> {
  const checkpoints = join(output, CHECKPOINTS);
  const target = join(checkpoints, checkpointName(stored.step));
  const scratch = join(checkpoints, `.tmp-restore-${checkpointName(stored.step)}`);
  await rm(scratch, { recursive: true, force: true });
  for (const file of stored.files) await deps.store.getFile(`${stored.folder}${file}`, join(scratch, ...file.split('/')));
  await rm(target, { recursive: true, force: true });
  await rename(scratch, target);
}

/**
 * Stores the trainer's checkpoints as it announces them; an announced folder is complete (the
 * trainer renames it into place). One upload at a time, and of those announced meanwhile only the
 * newest goes next: the trainer keeps few checkpoints, and an older one is worth nothing once a
 * newer one exists. A folder the trainer deleted before it was copied is skipped.
 */
class CheckpointUploader {
  private next: { readonly step: number; readonly folder: string } | null = null;
  private busy = false;
  private done: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: ActivityDependencies,
    private readonly root: string,
    /** The newest step stored or announced (-1: none); the trainer's steps only grow, a repeat is ignored. */
    private newest: number,
    private readonly warn: (message: string) => void,
  ) {}

  offer(step: number, folder: string): void {
    if (step <= this.newest) return;
    this.newest = step;
    this.next = { step, folder };
    if (this.busy) return;
    this.busy = true;
    this.done = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      for (let item = this.next; item !== null; item = this.next) {
        this.next = null;
        try {
          await storeCheckpoint(this.deps, this.root, item.step, item.folder);
        } catch (error) {
          this.warn(`trainer checkpoint of step ${item.step} not stored: ${(error as Error).message}`);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** Resolves once every announced checkpoint is stored (or skipped). */
  async finish(): Promise<void> {
    while (this.busy) await this.done;
  }
}

async function processCommand(pid: number): Promise<string | null> {
  return readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => null);
}

/**
 * A worker killed outright (SIGKILL, power loss) leaves its trainer running. Before a retry
 * trains into the same folder, that trainer is stopped like a cancelled one: SIGTERM makes it
 * write a checkpoint, which the retry resumes from. The pid counts only while its command line
 * still names this output folder (read from /proc), so a recycled pid is never signalled.
 */
async function stopOrphanedTrainer(output: string, graceMs: number): Promise<void> {
  const pid = Number(await readFile(join(output, PID_FILE), 'utf8').catch(() => ''));
  if (!Number.isInteger(pid) || pid <= 0 || !(await processCommand(pid))?.includes(output)) return;
  // An exited process may linger as a zombie with an empty command line: that counts as gone.
  const running = async () => (await processCommand(pid))?.includes(output) === true;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while ((await running()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (await running()) process.kill(pid, 'SIGKILL');
}

interface TrainerRun {
  readonly code: number | null;
  /** The last progress event (`done` carries the final loss). */
  readonly last: TrainerEvent;
  /** The message of an `error` event, if any. */
  readonly failure: string | null;
  readonly stderr: string;
}

/**
 * One trainer process: its events become progress, its checkpoints go to `onCheckpoint`;
 * cancellation stops it (SIGTERM, then SIGKILL after the grace time). Its stdin is a pipe this
 * process never writes to: when the worker dies, even by SIGKILL, the pipe closes and
 * `--stop-on-stdin-close` makes the trainer checkpoint and exit instead of training on unwatched.
 */
async function runTrainer(
  deps: ActivityDependencies,
  args: readonly string[],
  output: string,
  progress: ProgressReporter,
  onCheckpoint: (step: number, folder: string) => void,
): Promise<TrainerRun> {
  const { cancellationSignal } = progress.context;
  progress.checkCancelled();
  const [program, ...prefix] = deps.trainer.command;
  if (program === undefined) throw new Error('trainer command is empty');
  const child = spawn(program, [...prefix, ...args, '--stop-on-stdin-close'], {
    cwd: deps.trainer.cwd,
    env: { ...process.env, ...deps.trainer.env, ...trainerEnvironment(deps.device) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid !== undefined) await writeFile(join(output, PID_FILE), String(child.pid));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((done, fail) => {
    child.once('error', fail);
    child.once('exit', (code, signal) => done(code ?? (signal === null ? null : 128)));
  });
  const stop = () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), deps.trainer.stopGraceMs);
    void exited.finally(() => clearTimeout(timer));
  };
  cancellationSignal.addEventListener('abort', stop, { once: true });

  let last: TrainerEvent = { event: 'start' };
  let failure: string | null = null;
  // Checkpoint and phase lines carry no step count: they beat with the latest step line's figures.
  let shown: StageProgress = { stage: 'train' };
  for await (const line of createInterface({ input: child.stdout })) {
    let event: TrainerEvent;
    try {
      event = JSON.parse(line) as TrainerEvent;
    } catch {
      continue;
    }
    if (event.event === 'error') failure = event.message ?? null;
    if (event.event === 'checkpoint' && event.step !== undefined && event.path !== undefined) onCheckpoint(event.step, event.path);
    if (event.event === 'stopped' && event.step !== undefined && typeof event.checkpoint === 'string') onCheckpoint(event.step, event.checkpoint);
    last = event;
    if (event.step !== undefined && event.total !== undefined) shown = { stage: 'train', trainerStep: event.step, trainerSteps: event.total, loss: event.loss };
    progress.report(shown, event.event === 'done');
  }
  const code = await exited;
  cancellationSignal.removeEventListener('abort', stop);
  await rm(join(output, PID_FILE), { force: true });
  return { code, last, failure, stderr };
}

/**
 * Runs the Python LoRA trainer as a child process on the curated dataset. Its JSON progress
 * lines become heartbeats. Each checkpoint it writes is copied to the store (the newest only),
 * so a retry resumes from it on any worker: one whose work folder has no newer checkpoint
 * downloads it first. Cancellation (or worker shutdown) stops the trainer with SIGTERM, then
 * SIGKILL after the grace time; the checkpoint it writes on the way out is stored, no LoRA is.
 * On success the LoRA weights, the fused UNet and the metrics are uploaded, then the manifest,
 * and the stored checkpoint is deleted.
 *
 * Every round trains a fresh LoRA on the base generator (the trainer takes diffusers weights,
 * and a tuned UNet exists only fused, as ONNX): in a campaign the tuned generator of round r-1
 * changes what round r samples, and so what it learns from.
 */
export function createTrainLora(deps: ActivityDependencies) {
  return async function trainLora({ root, input }: RoundRequest): Promise<TrainResult> {
    const manifestKey = artifactKeys.trainManifest(root);
    const existing = await findJson<TrainResult>(deps.store, manifestKey);
    if (existing) {
      // A try that died between publishing the manifest and deleting the checkpoint left it.
      await removeStoredCheckpoints(deps, root, null);
      return existing;
    }
    const curated = await findJson<CurateResult>(deps.store, artifactKeys.curateManifest(root));
    if (!curated) throw badData('MissingArtifact', `${artifactKeys.curateManifest(root)}: not found; the dataset must be curated before training`);

    return withProgress({ stage: 'train' }, async (progress) => {
      const work = join(deps.workDir, ...root.split('/'), 'train');
      const dataset = join(work, 'dataset');
      const output = join(work, 'output');
      await mkdir(output, { recursive: true });
      await stopOrphanedTrainer(output, deps.trainer.stopGraceMs);
      await download(deps, curated.dataset, dataset);

      const { log } = progress.context;
      const stored = await findJson<StoredCheckpoint>(deps.store, artifactKeys.trainerCheckpointPointer(root));
      const local = await newestLocalCheckpoint(output);
      if (stored !== null && stored.step > (local ?? -1)) {
        await restoreCheckpoint(deps, stored, output);
        log.info(`trainer resumes from the stored checkpoint of step ${stored.step}`);
      }
      const uploader = new CheckpointUploader(deps, root, stored?.step ?? -1, (message) => log.warn(message));
      let run: TrainerRun;
      try {
        const args = trainerArguments(input.lora, { generator: input.generator.base, dataset, output }, deps.device);
        run = await runTrainer(deps, args, output, progress, (step, folder) => uploader.offer(step, folder));
      } finally {
        // The next try may run on another worker: what this one announced is stored before it ends.
        await uploader.finish();
      }
      if (progress.context.cancellationSignal.aborted) throw new CancelledFailure(`trainer stopped (exit ${run.code}) because the activity was cancelled`);
      const said = run.failure ?? run.stderr.trim().split('\n').slice(-3).join(' | ');
      if (run.code === EXIT_BAD_INPUT) throw badData('BadTrainingInput', said || 'the trainer refused its input');
      if (run.code !== 0) throw ApplicationFailure.retryable(`trainer exited with ${run.code}: ${said}`, 'TrainerFailed');

      const lora = artifactKeys.lora(root);
      const files = outputFiles(output);
      for (const file of files) await deps.store.putFile(`${lora}${file}`, join(output, ...file.split('/')));
      const result: TrainResult = { manifest: manifestKey, lora, steps: run.last.step ?? 0, finalLoss: run.last.final_loss ?? null };
      await putJson(deps.store, manifestKey, { ...result, files });
      await removeStoredCheckpoints(deps, root, null);
      return result;
    });
  };
}
