import { Context } from '@temporalio/activity';

import type { StageProgress } from '../contract/progress.js';

/**
 * Heartbeats with progress details: the Web UI shows them under the round's pending activities,
 * and a client adds them to the round's `progress` query (`withLiveProgress`). They are no events
 * in the round's history, however long the activity runs.
 */
export class ProgressReporter {
  constructor(
    readonly context: Context,
    private last: StageProgress,
  ) {}

  report(progress: StageProgress): void {
    this.last = progress;
    this.context.heartbeat(progress);
  }

  /** Repeats the latest details as a heartbeat. */
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
 * Heartbeats while a long step runs silently (loading a model, a denoising step, the trainer's
 * ONNX export), so the heartbeat timeout can be short enough to notice a dead worker quickly.
 * The generator, the judge and the referee run in lanes (models/lanes.ts) and training in a
 * child process, so no model call holds the event loop that heartbeats.
 */
const KEEP_ALIVE_MS = 5_000;

/** Runs an activity's work with a progress reporter that heartbeats at least every few seconds. */
export async function withProgress<T>(initial: StageProgress, work: (progress: ProgressReporter) => Promise<T>): Promise<T> {
  const progress = new ProgressReporter(Context.current(), initial);
  progress.report(initial);
  const keepAlive = setInterval(() => progress.keepAlive(), KEEP_ALIVE_MS);
  try {
    return await work(progress);
  } finally {
    clearInterval(keepAlive);
  }
}
