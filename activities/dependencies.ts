import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

import { describeErrors, parsePromptLines, type PromptLine, type PromptSource } from '../config/round.js';
import { ModelInterfaceError, ModelLayoutError, ModelInputError, SchedulerConfigError } from '../models/errors.js';
import type { ArtifactStore } from '../store/store.js';
import type { ModelRuntime } from './runtime.js';
import { PROGRESS_SIGNAL, type NON_RETRYABLE_ERRORS, type StageProgress } from './types.js';

/** The Python LoRA trainer as a command line: `[program, ...args]` to which the trainer's flags are appended. */
export interface TrainerCommand {
  readonly command: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** How long a stopped trainer may take to write its checkpoint before it is killed. */
  readonly stopGraceMs: number;
}

/** Everything activities use, injected by the worker (or a test). */
export interface ActivityDependencies {
  readonly store: ArtifactStore;
  readonly runtime: ModelRuntime;
  readonly trainer: TrainerCommand;
  /** `cpu` or `cuda:N`: models load there and the trainer sees only that device. */
  readonly device: string;
  /** Local scratch: downloaded datasets and models, trainer output and checkpoints. */
  readonly workDir: string;
}

export function badData(type: (typeof NON_RETRYABLE_ERRORS)[number], message: string, cause?: unknown): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true, cause: cause instanceof Error ? cause : undefined });
}

/**
 * The runtime's errors about a model folder or a request are bad data: retrying cannot fix
 * them, so they fail the activity at once. Others (a missing GPU provider, I/O) stay retryable:
 * another attempt, perhaps on another worker, may succeed.
 */
export function asActivityFailure(error: unknown): unknown {
  if (error instanceof ModelLayoutError || error instanceof ModelInterfaceError || error instanceof SchedulerConfigError) {
    return badData('BadModel', error.message, error);
  }
  if (error instanceof ModelInputError) return badData('InvalidInput', error.message, error);
  return error;
}

export async function loadPrompts(source: PromptSource, what: string): Promise<PromptLine[]> {
  if (Array.isArray(source)) return [...(source as readonly PromptLine[])];
  const file = resolve((source as { file: string }).file);
  const text = await readFile(file, 'utf8').catch((error: Error) => {
    throw badData('BadPrompts', `${what}: cannot read ${file} (${error.message}); expected a file of \`class; prompt\` lines`);
  });
  const parsed = parsePromptLines(text, file);
  if (!parsed.ok) throw badData('BadPrompts', `${what}: ${describeErrors(parsed.errors)}`);
  return parsed.value;
}

/**
 * Each signal is an event in the workflow's history (at most 51,200 events): one per 15 s keeps
 * a day of training near 6,000 while the `progress` query stays current enough to watch.
 */
const SIGNAL_INTERVAL_MS = 15_000;

/**
 * Heartbeats with progress details, and now and then signals them to the workflow so its
 * `progress` query shows live figures (a workflow cannot read its activities' heartbeats).
 * The signal needs the worker's client; without one (a test environment) only heartbeats go.
 */
export class ProgressReporter {
  private lastSignal = 0;

  constructor(
    readonly context: Context,
    private last: StageProgress,
  ) {}

  report(progress: StageProgress, force = false): void {
    this.last = progress;
    this.context.heartbeat(progress);
    const now = Date.now();
    if (!force && now - this.lastSignal < SIGNAL_INTERVAL_MS) return;
    this.lastSignal = now;
    let client;
    try {
      client = this.context.client;
    } catch {
      return;
    }
    const workflowId = this.context.info.workflowExecution?.workflowId;
    if (workflowId === undefined) return;
    client.workflow
      .getHandle(workflowId)
      .signal(PROGRESS_SIGNAL, progress)
      .catch((error: Error) => this.context.log.warn(`progress signal to ${workflowId} failed: ${error.message}`));
  }

  /** Repeats the latest details as a heartbeat, without a signal. */
  keepAlive(): void {
    this.context.heartbeat(this.last);
  }

  /** Throws the cancellation when the activity was cancelled, so loops stop between items. */
  checkCancelled(): void {
    const signal = this.context.cancellationSignal;
    if (signal.aborted) throw signal.reason;
  }
}

/**
 * Heartbeats while a long step runs silently (loading a model, the trainer's ONNX export), so
 * the heartbeat timeout can be short enough to notice a dead worker quickly. The event loop
 * stays free during model work (onnxruntime runs off it; training is a child process).
 */
const KEEP_ALIVE_MS = 5_000;

/** Runs an activity's work with a progress reporter that heartbeats at least every few seconds. */
export async function withProgress<T>(initial: StageProgress, work: (progress: ProgressReporter) => Promise<T>): Promise<T> {
  const progress = new ProgressReporter(Context.current(), initial);
  progress.report(initial, true);
  const keepAlive = setInterval(() => progress.keepAlive(), KEEP_ALIVE_MS);
  try {
    return await work(progress);
  } finally {
    clearInterval(keepAlive);
  }
}
