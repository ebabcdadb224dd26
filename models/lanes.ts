/**
 * Lanes: worker threads that each load a model service (laneServices.ts) and answer calls to
 * it. A model call holds the thread that makes it, so a worker's models run in lanes: its event
 * loop stays free for heartbeats, and on a CPU several single-threaded copies of a small graph
 * outrun one copy with several threads per operator.
 */
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import * as errors from './errors.js';
import { parseDevice } from './onnx.js';
import type { LaneServices } from './laneServices.js';

export type ServiceName = keyof LaneServices;

/** What a lane is started with (its worker data). */
export interface LaneSetup<S extends ServiceName = ServiceName> {
  readonly service: S;
  readonly options: LaneServices[S]['options'];
}

type SerializedError = { readonly name: string; readonly message: string };

/** Messages to a lane. */
export type LaneCommand = { readonly type: 'call'; readonly id: number; readonly payload: unknown } | { readonly type: 'release' };

/** Messages from a lane. */
export type LaneReply =
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly error: SerializedError }
  | { readonly type: 'progress'; readonly id: number; readonly progress: unknown }
  | { readonly type: 'done'; readonly id: number; readonly result: unknown }
  | { readonly type: 'error'; readonly id: number; readonly error: SerializedError };

export function serializeError(error: unknown): SerializedError {
  const { name, message } = error instanceof Error ? error : new Error(String(error));
  return { name, message };
}

/** The model errors by name, so a lane's refusal is the same error class on this side. */
const MODEL_ERRORS: Record<string, new (message: string) => Error> = {
  ModelError: errors.ModelError,
  ModelLayoutError: errors.ModelLayoutError,
  SchedulerConfigError: errors.SchedulerConfigError,
  ModelInterfaceError: errors.ModelInterfaceError,
  ModelInputError: errors.ModelInputError,
  UnknownClassError: errors.UnknownClassError,
  ImageDecodeError: errors.ImageDecodeError,
  ExecutionProviderError: errors.ExecutionProviderError,
};

function revive(error: SerializedError): Error {
  const ModelErrorClass = MODEL_ERRORS[error.name];
  if (ModelErrorClass) return new ModelErrorClass(error.message);
  const revived = new Error(error.message);
  revived.name = error.name;
  return revived;
}

/** A copy of graphs this large has operators big enough to split over threads: one lane takes them all. */
export const SMALL_GRAPHS_BYTES = 2 ** 30;

/**
 * How many lanes a worker's models get. On a CPU, graphs under SMALL_GRAPHS_BYTES get one lane
 * per thread (each lane a single thread: their operators are too small to split well, and a
 * prompt's images split instead), as many as fit in half the host's memory; larger graphs get
 * one lane with every thread, as does a GPU, whose sessions already use the whole device.
 */
export function defaultLanes(device: string, threads: number, graphBytes: number, memoryBytes: number): number {
  if (parseDevice(device).name !== 'cpu' || graphBytes >= SMALL_GRAPHS_BYTES) return 1;
  const copies = graphBytes > 0 ? Math.floor(memoryBytes / 2 / graphBytes) : threads;
  return Math.max(1, Math.min(threads, copies));
}

/** `count` items in `lanes` contiguous parts of near-equal size, none empty (one part when there are no items): each part's [start, end). */
export function contiguousParts(count: number, lanes: number): [number, number][] {
  const parts = Math.max(1, Math.min(lanes, count));
  const out: [number, number][] = [];
  let start = 0;
  for (let part = 0; part < parts; part++) {
    const end = start + Math.floor(count / parts) + (part < count % parts ? 1 : 0);
    out.push([start, end]);
    start = end;
  }
  return out;
}

/** Bytes of the files under the given folders: what one lane's copy of their graphs holds, external weights included. */
export async function folderBytes(folders: readonly string[]): Promise<number> {
  let total = 0;
  for (const folder of new Set(folders)) {
    for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size;
    }
  }
  return total;
}

/** Threads for each of a pool's lanes: its `threads` shared evenly (all cores when absent; one lane alone then takes onnxruntime's default, null). */
export function laneThreads(options: { readonly threads?: number; readonly lanes: number }): number | null {
  const { lanes } = options;
  if (!Number.isInteger(lanes) || lanes < 1) throw new errors.ModelInputError(`lanes must be a positive integer, got ${lanes}`);
  if (options.threads === undefined && lanes === 1) return null;
  return Math.max(1, Math.floor((options.threads ?? availableParallelism()) / lanes));
}

/**
 * A pool's lanes (the number asked for, else defaultLanes() for the models in `folders`; a hub
 * id, not a folder, counts nothing) and each lane's threads (laneThreads()).
 */
export async function planLanes(pool: {
  readonly device: string;
  readonly threads: number | null;
  readonly folders: readonly (string | null)[];
  readonly lanes?: number;
}): Promise<{ lanes: number; threads: number | null }> {
  const local = pool.folders.filter((f): f is string => f !== null && existsSync(f));
  const lanes = pool.lanes ?? defaultLanes(pool.device, pool.threads ?? availableParallelism(), await folderBytes(local), totalmem());
  return { lanes, threads: laneThreads({ lanes, ...(pool.threads === null ? {} : { threads: pool.threads }) }) };
}

/** `count` lanes of one service; a lane whose thread has died starts again at its next call. */
export class Lanes<S extends ServiceName> {
  private nextId = 0;
  /** Calls in flight, per lane. */
  private readonly busy: number[];
  private readonly starting = new Map<number, Promise<Lane>>();

  private constructor(
    private readonly setup: LaneSetup<S>,
    private readonly lanes: (Lane | null)[],
  ) {
    this.busy = lanes.map(() => 0);
  }

  static async start<S extends ServiceName>(setup: LaneSetup<S>, count: number): Promise<Lanes<S>> {
    const started = await Promise.allSettled(Array.from({ length: count }, () => Lane.start(setup)));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    const ready = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    if (failed) {
      await Promise.all(ready.map((lane) => lane.release()));
      throw failed.reason;
    }
    return new Lanes(setup, ready);
  }

  get count(): number {
    return this.lanes.length;
  }

  /** Runs a call on the lane with the fewest calls in flight, the first of those when several tie. */
  async call(payload: LaneServices[S]['call'], onProgress?: (progress: LaneServices[S]['progress']) => void): Promise<LaneServices[S]['result']> {
    const index = this.busy.indexOf(Math.min(...this.busy));
    this.busy[index] += 1;
    try {
      const lane = await this.ready(index);
      return (await lane.call(this.nextId++, payload, (progress) => onProgress?.(progress as LaneServices[S]['progress']))) as LaneServices[S]['result'];
    } finally {
      this.busy[index] -= 1;
    }
  }

  /**
   * Calls at once, each on the least busy lane, their results in order; after all have ended, the
   * first failure, if any (so no call is left running unseen). `onProgress` hears which call spoke.
   */
  async callEach(
    payloads: readonly LaneServices[S]['call'][],
    onProgress?: (index: number, progress: LaneServices[S]['progress']) => void,
  ): Promise<LaneServices[S]['result'][]> {
    const results = await Promise.allSettled(payloads.map((payload, index) => this.call(payload, (progress) => onProgress?.(index, progress))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return results.map((r) => (r as PromiseFulfilledResult<LaneServices[S]['result']>).value);
  }

  /** Lane `index`, started again (once, whoever asks meanwhile) when its thread has died. */
  private ready(index: number): Promise<Lane> {
    const lane = this.lanes[index];
    if (lane && !lane.dead) return Promise.resolve(lane);
    let starting = this.starting.get(index);
    if (!starting) {
      starting = Lane.start(this.setup)
        .then((started) => (this.lanes[index] = started))
        .finally(() => this.starting.delete(index));
      this.starting.set(index, starting);
    }
    return starting;
  }

  async release(): Promise<void> {
    await Promise.all(this.lanes.map((lane) => lane?.release()));
    this.lanes.fill(null);
  }
}

/**
 * The lane's entry: the compiled module beside this one, or under tsx (tests, scripts) the
 * TypeScript source with tsx registered in the thread first.
 */
function laneWorker(setup: LaneSetup): Worker {
  const here = fileURLToPath(import.meta.url);
  const entry = new URL(`./laneThread${extname(here)}`, import.meta.url);
  if (extname(here) !== '.ts') return new Worker(entry, { workerData: setup });
  const code = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(code, { eval: true, workerData: setup });
}

const RELEASE_MS = 10_000;

/** One worker thread and its calls in flight. An idle lane does not keep the process alive; one with calls in flight does. */
class Lane {
  dead = false;
  private readonly pending = new Map<number, { resolve: (result: unknown) => void; reject: (e: Error) => void; onProgress: (progress: unknown) => void }>();

  private constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on('message', (reply: LaneReply) => {
      if (reply.type === 'ready' || reply.type === 'failed') return;
      const call = this.pending.get(reply.id);
      if (!call) return;
      if (reply.type === 'progress') return call.onProgress(reply.progress);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.type === 'done') call.resolve(reply.result);
      else call.reject(revive(reply.error));
    });
    const lost = (why: string) => {
      this.dead = true;
      for (const call of this.pending.values()) call.reject(new Error(`a model lane stopped: ${why}`));
      this.pending.clear();
    };
    worker.on('error', (error) => lost(error.message));
    worker.on('exit', (code) => lost(`its thread exited (code ${code})`));
  }

  static start(setup: LaneSetup): Promise<Lane> {
    const worker = laneWorker(setup);
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`a model lane exited while loading (code ${code})`));
      const onError = (error: Error) => reject(error);
      worker.once('exit', onExit);
      worker.once('error', onError);
      worker.once('message', (reply: LaneReply) => {
        worker.off('exit', onExit);
        worker.off('error', onError);
        if (reply.type === 'ready') return resolve(new Lane(worker));
        void worker.terminate();
        reject(reply.type === 'failed' ? revive(reply.error) : new Error(`a model lane said ${reply.type} before it was ready`));
      });
    });
  }

  call(id: number, payload: unknown, onProgress: (progress: unknown) => void): Promise<unknown> {
    if (this.dead) return Promise.reject(new Error('a model lane stopped'));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.ref();
      this.worker.postMessage({ type: 'call', id, payload } satisfies LaneCommand);
    });
  }

  /** Releases the service and ends the thread (ended outright if it has not after RELEASE_MS). */
  async release(): Promise<void> {
    if (this.dead) return;
    const exited = new Promise((resolve) => this.worker.once('exit', resolve));
    this.worker.postMessage({ type: 'release' } satisfies LaneCommand);
    const timer = setTimeout(() => void this.worker.terminate(), RELEASE_MS);
    await exited;
    clearTimeout(timer);
  }
}
