import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

import type { LoraSettings } from '../config/round.js';
import { findJson, putJson } from '../store/store.js';
import type { RoundRequest } from './curate.js';
import { badData, withProgress, type ActivityDependencies, type ProgressReporter } from './dependencies.js';
import { artifactKeys } from './keys.js';
import type { CurateResult, TrainResult } from './types.js';

/** The trainer's flags for a round's LoRA settings. `--resume-from latest` starts fresh when there is no checkpoint. */
export function trainerArguments(lora: LoraSettings, paths: { generator: string; dataset: string; output: string }, device: string): string[] {
  const args = ['--generator', paths.generator, '--dataset', paths.dataset, '--output', paths.output];
  args.push('--rank', String(lora.rank), '--learning-rate', String(lora.learningRate), '--batch-size', String(lora.batchSize), '--seed', String(lora.seed));
  args.push(...(lora.maxSteps === null ? ['--epochs', String(lora.epochs)] : ['--max-steps', String(lora.maxSteps)]));
  if (lora.resolution !== null) args.push('--resolution', String(lora.resolution));
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

/** One trainer process: its events become progress; cancellation stops it (SIGTERM, then SIGKILL after the grace time). */
async function runTrainer(deps: ActivityDependencies, args: readonly string[], output: string, progress: ProgressReporter): Promise<TrainerRun> {
  const { cancellationSignal } = progress.context;
  progress.checkCancelled();
  const [program, ...prefix] = deps.trainer.command;
  if (program === undefined) throw new Error('trainer command is empty');
  const child = spawn(program, [...prefix, ...args], {
    cwd: deps.trainer.cwd,
    env: { ...process.env, ...deps.trainer.env, ...trainerEnvironment(deps.device) },
    stdio: ['ignore', 'pipe', 'pipe'],
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
  for await (const line of createInterface({ input: child.stdout })) {
    let event: TrainerEvent;
    try {
      event = JSON.parse(line) as TrainerEvent;
    } catch {
      continue;
    }
    if (event.event === 'error') failure = event.message ?? null;
    last = event;
    progress.report({ stage: 'train', trainerStep: event.step, trainerSteps: event.total, loss: event.loss }, event.event === 'done');
  }
  const code = await exited;
  cancellationSignal.removeEventListener('abort', stop);
  await rm(join(output, PID_FILE), { force: true });
  return { code, last, failure, stderr };
}

/**
 * Runs the Python LoRA trainer as a child process on the curated dataset. Its JSON progress
 * lines become heartbeats; its checkpoints live in the worker's work folder, so a retry on the
 * same worker resumes from the last one. Cancellation (or worker shutdown) stops it with
 * SIGTERM, then SIGKILL after the grace time; nothing is uploaded then. On success the LoRA
 * weights, the fused UNet and the metrics are uploaded, then the manifest.
 *
 * Every round trains a fresh LoRA on the base generator (the trainer takes diffusers weights,
 * and a tuned UNet exists only fused, as ONNX): in a campaign the tuned generator of round r-1
 * changes what round r samples, and so what it learns from.
 */
export function createTrainLora(deps: ActivityDependencies) {
  return async function trainLora({ root, input }: RoundRequest): Promise<TrainResult> {
    const manifestKey = artifactKeys.trainManifest(root);
    const existing = await findJson<TrainResult>(deps.store, manifestKey);
    if (existing) return existing;
    const curated = await findJson<CurateResult>(deps.store, artifactKeys.curateManifest(root));
    if (!curated) throw badData('MissingArtifact', `${artifactKeys.curateManifest(root)}: not found; the dataset must be curated before training`);

    return withProgress({ stage: 'train' }, async (progress) => {
      const work = join(deps.workDir, ...root.split('/'), 'train');
      const dataset = join(work, 'dataset');
      const output = join(work, 'output');
      await mkdir(output, { recursive: true });
      await stopOrphanedTrainer(output, deps.trainer.stopGraceMs);
      await download(deps, curated.dataset, dataset);

      const run = await runTrainer(deps, trainerArguments(input.lora, { generator: input.generator.base, dataset, output }, deps.device), output, progress);
      if (progress.context.cancellationSignal.aborted) throw new CancelledFailure(`trainer stopped (exit ${run.code}) because the activity was cancelled`);
      const said = run.failure ?? run.stderr.trim().split('\n').slice(-3).join(' | ');
      if (run.code === EXIT_BAD_INPUT) throw badData('BadTrainingInput', said || 'the trainer refused its input');
      if (run.code !== 0) throw ApplicationFailure.retryable(`trainer exited with ${run.code}: ${said}`, 'TrainerFailed');

      const lora = artifactKeys.lora(root);
      const files = outputFiles(output);
      for (const file of files) await deps.store.putFile(`${lora}${file}`, join(output, ...file.split('/')));
      const result: TrainResult = { manifest: manifestKey, lora, steps: run.last.step ?? 0, finalLoss: run.last.final_loss ?? null };
      await putJson(deps.store, manifestKey, { ...result, files });
      return result;
    });
  };
}
