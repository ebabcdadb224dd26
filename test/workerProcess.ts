/** Worker processes for fault tests and the dashboard snapshot: the real entry points as child processes, killed or stopped as a machine's worker would be. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { REPO_ROOT } from './servers.js';

const running: WorkerProcess[] = [];

/** The entry point of each role: `all` runs both roles in one process, as the embedded default does. */
const ENTRY_POINTS = { all: 'all-in-one.ts', cpu: 'cpu.ts', gpu: 'gpu.ts' } as const;

/** A worker process (by default the all-in-one `workers/all-in-one.ts`) with a work folder of its own (as if on another machine). */
export class WorkerProcess {
  readonly exited: Promise<number | null>;
  /** Everything the worker wrote, stdout and stderr: `<work folder>.log`. */
  readonly logFile: string;
  private readonly child: ChildProcess;
  private output = '';

  private constructor(
    readonly workDir: string,
    environment: Readonly<Record<string, string>>,
    role: keyof typeof ENTRY_POINTS,
    cpus: readonly number[] | undefined,
  ) {
    const command = [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'workers', ENTRY_POINTS[role])];
    // taskset execs the worker in its own place, so the process id stays the worker's.
    const [program, ...args] = cpus === undefined ? command : ['taskset', '--cpu-list', cpus.join(','), ...command];
    this.child = spawn(program!, args, {
      cwd: REPO_ROOT,
      // One thread unless `environment` says otherwise: test workers share the host's cores.
      env: { ...process.env, SELF_REWARD_THREADS: '1', OMP_NUM_THREADS: '1', ...environment, SELF_REWARD_WORK_DIR: workDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.logFile = `${workDir}.log`;
    const file = createWriteStream(this.logFile, { flags: 'a' });
    this.child.stdout?.pipe(file, { end: false });
    this.child.stderr?.pipe(file, { end: false });
    this.exited = new Promise((done) => this.child.once('exit', (code, signal) => done(code ?? (signal === null ? null : -1))));
  }

  /**
   * Starts one and waits until it polls; `environment` holds TEMPORAL_ADDRESS and the store's
   * settings (and SELF_REWARD_THREADS, OMP_NUM_THREADS to give it more than one thread); `cpus`
   * pins it, and every process it starts, to those cores.
   */
  static async start(
    workDir: string,
    environment: Readonly<Record<string, string>>,
    role: keyof typeof ENTRY_POINTS = 'all',
    cpus?: readonly number[],
  ): Promise<WorkerProcess> {
    const worker = new WorkerProcess(workDir, environment, role, cpus);
    running.push(worker);
    let seen = '';
    const polling = new Promise<void>((done) => {
      const watch = (chunk: Buffer) => {
        // Search the whole chunk (plus the last one's tail, for a line split across two) before
        // trimming: a worker that picks up pending work at once logs the RUNNING line and more
        // in one chunk.
        seen += chunk.toString();
        worker.output = (worker.output + chunk.toString()).slice(-20_000);
        // The text and the JSON log formats.
        if (seen.includes("state: 'RUNNING'") || seen.includes('"state":"RUNNING"')) done();
        seen = seen.slice(-200);
      };
      worker.child.stdout?.on('data', watch);
      worker.child.stderr?.on('data', watch);
    });
    await Promise.race([polling, worker.exited]);
    if (worker.child.exitCode !== null) throw new Error(`worker in ${workDir} exited at start:\n${worker.output}`);
    return worker;
  }

  /** Every worker started and not yet gone: stopped at the end of a test file. */
  static async stopAll(): Promise<void> {
    await Promise.all(running.map((w) => w.stop()));
  }

  get log(): string {
    return this.output;
  }

  /** The worker's process id, the first part of its Temporal identity (`<pid>@<host>`). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** SIGKILL: the machine's power cut. */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: a graceful stop (`docker compose stop`): running activities are cancelled, a training checkpoints. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    await this.exited;
  }
}

export async function until(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Live processes whose command line mentions `text` (a zombie has an empty one). */
export async function processesMentioning(text: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  const commands = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
  return pids.filter((_, i) => commands[i]!.includes(text)).map(Number);
}
