/**
 * `npm run bench:pack-workers`: the fan-out benchmark with real activities. For each W, a fresh
 * dev server, the product's own worker entry points as processes (one CPU worker and W GPU
 * workers, each GPU worker with SELF_REWARD_THREADS = floor(cores / W) and a work folder of its
 * own, all on one local folder store) and one real `selfRewardRound` on the shapes pack's preset.
 * It prints per W the wall time, the activities' summed run times (started to completed, from
 * the history), each stage's wall time, the history's size and wall(W) / wall(1).
 * Options: --workers 1,2 --threads N (per GPU worker; default floor(cores / W)) --override JSON
 * (fields merged over the preset's key by key, e.g. '{"lora":{"maxSteps":20},"samplesPerPrompt":2}')
 * --timeline (after each W's row, every completed activity: its worker, cpu or gpu-<i>, and when it
 * was scheduled, started and completed, in seconds from the round's start) --logs DIR (each worker's
 * log kept there as w<W>-cpu.log and w<W>-gpu-<i>.log) --pin (GPU worker i pinned with `taskset` to
 * cores of its own, i T to i T + T - 1 for T threads, as a worker with a GPU of its own; the CPU
 * worker and the dev server go where the kernel puts them).
 * Without `shards` in the override a round gets max(the preset's shards, 2 W), so every GPU worker
 * has shards to take, and without `lora.workers` its LoRA trains on all W GPU workers together.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Client, Connection } from '@temporalio/client';

import { loadRoundConfig, mergeConfig } from '../../cli/config.js';
import { SelfRewardClient } from '../../client/index.js';
import { parsePromptLines, type PromptSource } from '../../config/prompts.js';
import type { RoundInput } from '../../config/round.js';
import { REPO_ROOT } from '../servers.js';
import { WorkerProcess } from '../workerProcess.js';
import { activityRuns, historySize, millis, startBenchServer, Table, type ActivityRun } from './harness.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2' },
    threads: { type: 'string' },
    override: { type: 'string', default: '{}' },
    timeline: { type: 'boolean', default: false },
    logs: { type: 'string' },
    pin: { type: 'boolean', default: false },
  },
});
const workerCounts = values.workers.split(',').map(Number);
const cores = availableParallelism();
const override: unknown = JSON.parse(values.override);
const overrides = (field: string, within?: string): boolean => {
  const holder = within === undefined ? override : (override as Record<string, unknown> | null)?.[within];
  return typeof holder === 'object' && holder !== null && field in holder;
};

/** The preset with the user's override; `shards` raised to 2 W and `lora.workers` set to W unless the override names them. */
function roundInput(w: number): RoundInput {
  const chosen = loadRoundConfig({ preset: 'shapes', root: REPO_ROOT, override });
  if (overrides('shards') && chosen.shards < w)
    throw new Error(`--override sets shards to ${chosen.shards}, fewer than the ${w} GPU workers: some would have nothing to do`);
  const fitted = {
    ...(overrides('shards') ? {} : { shards: Math.max(chosen.shards, 2 * w) }),
    ...(overrides('workers', 'lora') ? {} : { lora: { workers: w } }),
  };
  return loadRoundConfig({ preset: 'shapes', root: REPO_ROOT, override: mergeConfig(override, fitted) });
}

function promptCount(source: PromptSource | null): number {
  if (source === null) return 0;
  if (!('file' in source)) return source.length;
  const parsed = parsePromptLines(readFileSync(source.file, 'utf8'), source.file);
  if (!parsed.ok) throw new Error(`${source.file}: not a prompt file`);
  return parsed.value.length;
}

/** The round's stages as the table shows them, each by the activities it waits for. */
const STAGES = {
  'sample+judge': ['sampleShard', 'judgeShard'],
  // The references and the validations are sampled beside the training, so they belong to it.
  train: ['trainLora', 'joinTraining', 'sampleReferences', 'sampleValidationBase', 'validateLora'],
  evaluate: ['evaluateShard', 'evaluateRound'],
} as const;

/** From the first of a stage's activities scheduled to the last completed, in seconds; null for a stage that did not run. */
function stageWall(runs: readonly ActivityRun[], types: readonly string[]): number | null {
  const ofStage = runs.filter((r) => types.includes(r.type));
  if (ofStage.length === 0) return null;
  return (Math.max(...ofStage.map((r) => r.completed)) - Math.min(...ofStage.map((r) => r.scheduled))) / 1000;
}

/** With --pin, GPU worker i's cores: the i-th run of `threads` cores, none shared with another GPU worker. */
function pinnedCores(i: number, threads: number): number[] | undefined {
  if (!values.pin) return undefined;
  return Array.from({ length: threads }, (_, k) => i * threads + k);
}

async function measure(w: number, input: RoundInput, threads: number) {
  const server = await startBenchServer('bench-pack-workers-');
  const connection = await Connection.connect({ address: server.address });
  const workers: WorkerProcess[] = [];
  // The names the timeline and the kept logs give the workers: cpu, then gpu-0, gpu-1...
  const names = () => workers.map((_, i) => (i === 0 ? 'cpu' : `gpu-${i - 1}`));
  try {
    const environment = { TEMPORAL_ADDRESS: server.address, SELF_REWARD_STORE: join(server.scratch, 'store') };
    // The CPU worker's activities (prepare, curate, report) are light: it keeps the default single thread.
    workers.push(await WorkerProcess.start(join(server.scratch, 'work-cpu'), environment, 'cpu'));
    const gpuEnvironment = { ...environment, SELF_REWARD_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
    workers.push(
      ...(await Promise.all(
        Array.from({ length: w }, (_, i) => WorkerProcess.start(join(server.scratch, `work-gpu-${i}`), gpuEnvironment, 'gpu', pinnedCores(i, threads))),
      )),
    );
    const client = new SelfRewardClient(new Client({ connection }));
    // A worker that dies mid-round would leave the round waiting on retries: stop at once instead.
    const died = Promise.race(
      workers.map(async (worker) => {
        const code = await worker.exited;
        throw new Error(`a worker exited (code ${code}) during the round; the end of its log:\n${worker.log.slice(-3000)}`);
      }),
    );
    died.catch(() => undefined);
    const started = performance.now();
    const round = await client.startRound(input, { workflowId: `pack-workers-${w}-${randomUUID()}` });
    await Promise.race([round.result(), died]);
    const wall = (performance.now() - started) / 1000;
    const { training } = await round.result();
    const nameOf = new Map(workers.map((worker, i) => [String(worker.pid), names()[i]!]));
    return { wall, trainedBy: training.workers ?? 1, events: (await round.workflow.fetchHistory()).events ?? [], nameOf };
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
    if (values.logs !== undefined) {
      await mkdir(values.logs, { recursive: true });
      await Promise.all(workers.map((worker, i) => copyFile(worker.logFile, join(values.logs!, `w${w}-${names()[i]}.log`))));
    }
    await connection.close();
    await server.stop();
  }
}

const seconds = (value: number | null) => (value === null ? '-' : value.toFixed(1));

/** Each completed activity's worker (by `nameOf` its process id) and times, in seconds from `start`: where a round's workers sat idle. */
function printTimeline(runs: readonly ActivityRun[], start: number, nameOf: ReadonlyMap<string, string>): void {
  const timeline = new Table(['activity'.padStart(20), 'worker', 'scheduled', 'started', 'completed', 'ran s']);
  timeline.printHeader();
  for (const r of runs)
    timeline.printRow([
      r.type,
      nameOf.get(r.worker.split('@')[0]!) ?? r.worker,
      ((r.scheduled - start) / 1000).toFixed(1),
      ((r.started - start) / 1000).toFixed(1),
      ((r.completed - start) / 1000).toFixed(1),
      ((r.completed - r.started) / 1000).toFixed(1),
    ]);
}

const sample = roundInput(1);
console.log(
  `pack workers: the shapes preset${values.override === '{}' ? '' : ' with --override'}: ${promptCount(sample.prompts)} training prompts × ${sample.samplesPerPrompt} images, ` +
    `${sample.sampling.steps} steps; LoRA ${sample.lora.maxSteps === null ? `${sample.lora.epochs} epochs` : `${sample.lora.maxSteps} steps`}; ` +
    `${promptCount(sample.evaluation.prompts)} held-out prompts × ${sample.evaluation.seedsPerPrompt} seeds each`,
);
console.log(
  `host: ${cores} cores, shared by every worker and the dev server and by anything else running: wall times mean little unless the host is otherwise idle (see the load averages).`,
);
if (values.threads === undefined)
  console.log('threads per GPU worker: floor(cores / W), so they change with W; --threads N holds them fixed, to compare the workers alone.');
const table = new Table([
  'workers',
  'threads',
  'shards',
  'trained by',
  'load before',
  'wall s',
  'activities s',
  ...Object.keys(STAGES).map((stage) => `${stage} s`),
  'events',
  'history KB',
  'wall / wall(1)',
  'load after',
]);
table.printHeader();
let wallOfOne: number | null = null;
for (const w of workerCounts) {
  const input = roundInput(w);
  const threads = values.threads === undefined ? Math.max(1, Math.floor(cores / w)) : Number(values.threads);
  if (values.pin && w * threads > cores) throw new Error(`--pin: ${w} GPU workers of ${threads} threads need ${w * threads} cores; this host has ${cores}`);
  const loadBefore = loadavg()[0]!;
  const { wall, trainedBy, events, nameOf } = await measure(w, input, threads);
  const loadAfter = loadavg()[0]!;
  if (w === 1) wallOfOne ??= wall;
  const runs = activityRuns(events);
  const size = historySize(events);
  table.printRow([
    String(w),
    String(threads),
    String(input.shards),
    `${trainedBy} of ${input.lora.workers}`,
    loadBefore.toFixed(2),
    wall.toFixed(1),
    (runs.reduce((sum, r) => sum + (r.completed - r.started), 0) / 1000).toFixed(1),
    ...Object.values(STAGES).map((types) => seconds(stageWall(runs, types))),
    String(size.events),
    (size.bytes / 1024).toFixed(0),
    wallOfOne === null ? '-' : (wall / wallOfOne).toFixed(3),
    loadAfter.toFixed(2),
  ]);
  if (values.timeline) printTimeline(runs, millis(events[0]?.eventTime), nameOf);
}
console.log('trained by: the GPU workers that trained the LoRA together, of the `lora.workers` it asked for.');
console.log("load: the host's 1-minute load average just before the workers start and just after the round ends.");
