import { Context } from '@temporalio/activity';

import { stageProgressSignal } from '../contract/workflows.js';
import type { StageProgress } from '../contract/progress.js';

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
      .signal(stageProgressSignal, progress)
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
