/**
 * One trainer child process, supervised: its JSON-lines events become progress, cancellation
 * stops it with a checkpoint, and a trainer a killed worker left behind is stopped before a retry
 * trains into the same folder.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import type { StageProgress } from '../../contract/progress.js';
import type { ActivityDependencies } from '../dependencies.js';
import type { ProgressReporter } from '../progress.js';
import { trainerEnvironment } from './arguments.js';
import { readTrainerEvent, type TrainerEvent } from './events.js';
import { TrainerSpans } from './spans.js';

/** The trainer's exit code for input the user must fix. */
export const EXIT_BAD_INPUT = 2;

/** What the trainer's `error` event said. */
export interface TrainerFailure {
  /** `bad_input`, `bad_checkpoint` (exit 2) or `failure` (exit 1). */
  readonly kind: string | null;
  readonly message: string | null;
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
export async function stopOrphanedTrainer(output: string, graceMs: number): Promise<void> {
  const pid = Number(await readFile(join(output, PID_FILE), 'utf8').catch(() => ''));
  if (!Number.isInteger(pid) || pid <= 0 || !(await processCommand(pid))?.includes(output)) return;
  // An exited process may linger as a zombie with an empty command line: that counts as gone.
  const running = async () => (await processCommand(pid))?.includes(output) === true;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while ((await running()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (await running()) process.kill(pid, 'SIGKILL');
}

export interface TrainerRun {
  readonly code: number | null;
  /** The last progress event (`done` carries the final loss). */
  readonly last: TrainerEvent;
  /** The `error` event, if any. */
  readonly failure: TrainerFailure | null;
  /** The end of what it wrote on stderr (all of it is in the log file). */
  readonly stderr: string;
  /** Of a trainer in a team (`lora.workers` > 1): its place and the team's size, once they were settled. */
  readonly team: { readonly rank: number | null; readonly size: number } | null;
  /** Of a trainer stopped as hung (`stallSeconds`): the last step it made. */
  readonly stalled: { readonly step: number } | null;
}

/** What the activity does with a trainer's announcements. */
export interface TrainerListeners {
  /** A checkpoint was written (or, on a stop, kept) at this folder. */
  readonly checkpoint?: (step: number, folder: string) => void;
  /** A team's leader waits for the others at this port; the trainer goes on meanwhile. */
  readonly meeting?: (port: number) => Promise<void>;
  /**
   * Once its training phase began, a trainer that makes no step for this many seconds is
   * stopped as hung (SIGTERM, then SIGKILL after as long again, or the stop grace time if
   * shorter): a collective waiting on a team member gone from the network, or a GPU that
   * stopped answering, would otherwise hold the worker while its heartbeats go on.
   */
  readonly stallSeconds?: number;
  /**
   * A team member's trainer: its steps are its leader's, so they feed its progress and its
   * watchdog but are counted in the metrics by the leader's worker alone.
   */
  readonly member?: boolean;
}

/**
 * One trainer process: its events become progress, metrics, log lines and spans (its phases,
 * under the activity's), its checkpoints go to `onCheckpoint`, everything it writes on stderr
 * goes to `logFile` (and the worker's log); cancellation stops it (SIGTERM, then SIGKILL after
 * the grace time). Its stdin is a pipe this process never writes to: when the worker dies, even
 * by SIGKILL, the pipe closes and `--stop-on-stdin-close` makes the trainer checkpoint and exit
 * instead of training on unwatched.
 */
export async function runTrainer(
  deps: ActivityDependencies,
  args: readonly string[],
  output: string,
  logFile: string,
  progress: ProgressReporter,
  listeners: TrainerListeners,
): Promise<TrainerRun> {
  const { log } = progress.context;
  const { cancellationSignal } = progress.context;
  progress.checkCancelled();
  const [program, ...prefix] = deps.trainer.command;
  if (program === undefined) throw new Error('trainer command is empty');
  const child = spawn(program, [...prefix, ...args, '--stop-on-stdin-close'], {
    cwd: deps.trainer.cwd,
    env: { ...trainerEnvironment(deps.device, deps.threads), ...deps.trainer.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid !== undefined) await writeFile(join(output, PID_FILE), String(child.pid));
  let stderr = '';
  const logged = createWriteStream(logFile, { flags: 'a' });
  child.stderr.on('data', (chunk: Buffer) => {
    logged.write(chunk);
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const relayed = createInterface({ input: child.stderr });
  relayed.on('line', (line) => {
    if (line.trim() !== '') log.info(`trainer: ${line.slice(0, 2000)}`, { source: 'trainer' });
  });
  const exited = new Promise<number | null>((done, fail) => {
    child.once('error', fail);
    child.once('exit', (code, signal) => done(code ?? (signal === null ? null : 128)));
  });
  const stop = (graceMs: number) => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    void exited.finally(() => clearTimeout(timer));
  };
  const cancel = () => stop(deps.trainer.stopGraceMs);
  cancellationSignal.addEventListener('abort', cancel, { once: true });

  let stalled: TrainerRun['stalled'] = null;
  let stallTimer: NodeJS.Timeout | undefined;
  /** (Re)starts the wait for the step after `step`; with `step` null, stops waiting. */
  const awaitStepAfter = (step: number | null) => {
    clearTimeout(stallTimer);
    const seconds = listeners.stallSeconds;
    if (step === null || seconds === undefined) return;
    stallTimer = setTimeout(() => {
      stalled = { step };
      log.warn(`trainer made no step for ${seconds} s after step ${step}: it is stopped as hung`);
      // A trainer that made no step in that time would take as long to reach the checkpoint
      // SIGTERM asks for, and one blocked in a collective never runs its handler.
      stop(Math.min(deps.trainer.stopGraceMs, seconds * 1000));
    }, seconds * 1000);
  };

  const spans = new TrainerSpans();
  let last: TrainerEvent = { event: 'start' };
  let failure: TrainerFailure | null = null;
  let team: TrainerRun['team'] = null;
  // Checkpoint and phase lines carry no step count: they beat with the latest step line's figures.
  let shown: StageProgress = { stage: 'train' };
  let lastStep: { step: number; at: number } | null = null;
  let trainingSince: number | null = null;
  for await (const line of createInterface({ input: child.stdout })) {
    const event = readTrainerEvent(line);
    if (event === null) continue;
    spans.record(event);
    if (event.event === 'error') failure = { kind: event.kind ?? null, message: event.message ?? null };
    if (event.event === 'checkpoint' && event.step !== undefined && event.path !== undefined) listeners.checkpoint?.(event.step, event.path);
    if (event.event === 'stopped' && event.step !== undefined && typeof event.checkpoint === 'string') listeners.checkpoint?.(event.step, event.checkpoint);
    if (event.event === 'meeting' && event.port !== undefined) await listeners.meeting?.(event.port);
    if (event.event === 'team' && event.size !== undefined) team = { rank: event.rank ?? null, size: event.size };
    if (event.event === 'phase') awaitStepAfter(event.phase === 'train' ? (lastStep?.step ?? shown.trainerStep ?? 0) : null);
    if ((event.event === 'step' || event.event === 'checkpoint') && event.step !== undefined && stalled === null) awaitStepAfter(event.step);
    if (event.event === 'step' && event.step !== undefined) {
      const now = performance.now();
      // The first step of a process is timed from the start of its training phase.
      const previous = lastStep ?? { step: event.step - 1, at: trainingSince ?? now };
      const counted = listeners.member !== true;
      if (counted && event.step > previous.step) {
        deps.metrics.trainerSteps.record(event.step - previous.step, {});
        deps.metrics.trainerStepSeconds.record((now - previous.at) / 1000 / (event.step - previous.step), {});
      }
      lastStep = { step: event.step, at: now };
      if (counted && event.loss !== undefined) deps.metrics.trainerLoss.record(event.loss, {});
    } else {
      if (event.event === 'phase' && event.phase === 'train') trainingSince = performance.now();
      log.info(`trainer ${event.event}${event.phase === undefined ? '' : ` ${event.phase}`}${event.step === undefined ? '' : ` at step ${event.step}`}`, {
        source: 'trainer',
      });
    }
    last = event;
    if (event.step !== undefined && event.total !== undefined) shown = { stage: 'train', trainerStep: event.step, trainerSteps: event.total, loss: event.loss };
    progress.report(shown);
  }
  const code = await exited;
  clearTimeout(stallTimer);
  spans.end(code);
  await new Promise<void>((done) => logged.end(done));
  cancellationSignal.removeEventListener('abort', cancel);
  await rm(join(output, PID_FILE), { force: true });
  return { code, last, failure, stderr, team, stalled };
}
