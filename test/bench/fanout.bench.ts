/**
 * `npm run bench:fanout`: how a round's wall time falls with its GPU workers. The real workflows
 * on a real dev server, a CPU worker in this process and W GPU worker processes whose activities
 * are stand-ins of fixed durations (`standInActivities.ts`), for W = 1, 2, 4, 8, 16. For each W it
 * prints the wall time; the ideal (the critical path with W workers: the shards' sample and judge
 * spread over W, training beside the references when W > 1, the evaluation's shards spread over
 * W); the efficiency (ideal / wall); the
 * mean task-queue latency (schedule to start, of the activities that found a worker free: the
 * CPU worker's and the first wave of shards); and the round's history (events, bytes).
 * Options: --workers 1,2,4,8,16 --shards N (32) --sample S (2) --judge S (1) --train S (6)
 * --references S (3) --evaluate-shard S (1: each of the evaluation's shards, as many as the
 * round's) --evaluate S (0.5: the evaluation's figures) --light S (0.2: prepare, curate, report).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';

import { SelfRewardClient } from '../../client/index.js';
import { ACTIVITY_ROLES, activitiesOf, TASK_QUEUES } from '../../contract/workers.js';
import { WORKFLOWS_PATH } from '../../workers/plugin.js';
import { REPO_ROOT } from '../servers.js';
import { activityRuns, historySize, startBenchServer, Table } from './harness.js';
import { standInActivities, type StandInDurations } from './standInActivities.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2,4,8,16' },
    shards: { type: 'string', default: '32' },
    sample: { type: 'string', default: '2' },
    judge: { type: 'string', default: '1' },
    train: { type: 'string', default: '6' },
    references: { type: 'string', default: '3' },
    'evaluate-shard': { type: 'string', default: '1' },
    evaluate: { type: 'string', default: '0.5' },
    light: { type: 'string', default: '0.2' },
  },
});
const light = Number(values.light);
const durations: StandInDurations = {
  prepare: light,
  sample: Number(values.sample),
  judge: Number(values.judge),
  curate: light,
  train: Number(values.train),
  references: Number(values.references),
  evaluateShard: Number(values['evaluate-shard']),
  evaluate: Number(values.evaluate),
  report: light,
};
const shards = Number(values.shards);
const workerCounts = values.workers.split(',').map(Number);

/** The shortest a round can take on `w` GPU workers: shards spread evenly, training beside the references when there is a second worker. */
function ideal(w: number): number {
  const d = durations;
  const shardWaves = Math.ceil(shards / w) * (d.sample + d.judge);
  const training = w > 1 ? Math.max(d.train, d.references) : d.train + d.references;
  const evaluation = Math.ceil(shards / w) * d.evaluateShard + d.evaluate;
  return d.prepare + shardWaves + d.curate + training + evaluation + d.report;
}

async function startGpuWorker(address: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test', 'bench', 'standInWorker.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, TEMPORAL_ADDRESS: address, STAND_IN_DURATIONS: JSON.stringify(durations) },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  for await (const line of createInterface({ input: child.stdout! })) if (line === 'ready') return child;
  throw new Error('a stand-in GPU worker exited before it polled');
}

const GPU_ACTIVITIES = new Set(Object.entries(ACTIVITY_ROLES).flatMap(([name, role]) => (role === 'gpu' ? [name] : [])));

const server = await startBenchServer('bench-fanout-');
const { address } = server;
try {
  const bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} } });
  const native = await NativeConnection.connect({ address });
  const client = new SelfRewardClient(new Client({ connection: await Connection.connect({ address }) }));
  const input = {
    generator: { base: '/models/generator' },
    judge: { detector: '/models/detector', clip: '/models/clip' },
    prompts: Array.from({ length: shards }, (_, i) => ({ className: 'circle', text: `circle ${i}` })),
    shards,
    // As many held-out prompts as shards: the evaluation has a shard for each.
    evaluation: { prompts: Array.from({ length: shards }, (_, i) => ({ className: 'circle', text: `a held-out circle ${i}` })) },
  };
  console.log(
    `fan-out: ${shards} shards, sample ${durations.sample} s + judge ${durations.judge} s each, train ${durations.train} s beside references ${durations.references} s, evaluate ${shards} shards of ${durations.evaluateShard} s and ${durations.evaluate} s of figures`,
  );
  const table = new Table(['workers', 'wall s', 'ideal s', 'efficiency', 'queue latency ms', 'events', 'history KB']);
  table.printHeader();
  for (const w of workerCounts) {
    const gpus = await Promise.all(Array.from({ length: w }, () => startGpuWorker(address)));
    const cpu = await Worker.create({
      connection: native,
      taskQueue: TASK_QUEUES.workflows,
      workflowBundle: bundle,
      activities: activitiesOf('cpu', standInActivities(durations)),
    });
    try {
      const { wall, events } = await cpu.runUntil(async () => {
        const started = performance.now();
        const round = await client.startRound(input, { workflowId: `fanout-${w}-${randomUUID()}` });
        await round.result();
        const wall = (performance.now() - started) / 1000;
        return { wall, events: (await round.workflow.fetchHistory()).events ?? [] };
      });
      const runs = activityRuns(events);
      // Latency where a worker was free: the CPU worker's activities and the first wave of shards
      // (later shards wait for a GPU worker, which the ideal counts).
      const free = [
        ...runs.filter((r) => !GPU_ACTIVITIES.has(r.type)),
        ...runs
          .filter((r) => r.type === 'sampleShard')
          .sort((a, b) => a.started - b.started)
          .slice(0, w),
      ];
      const latency = free.reduce((sum, r) => sum + (r.started - r.scheduled), 0) / free.length;
      const size = historySize(events);
      table.printRow([
        String(w),
        wall.toFixed(1),
        ideal(w).toFixed(1),
        (ideal(w) / wall).toFixed(3),
        latency.toFixed(0),
        String(size.events),
        (size.bytes / 1024).toFixed(0),
      ]);
    } finally {
      for (const gpu of gpus) gpu.kill('SIGTERM');
      await Promise.all(gpus.map((gpu) => new Promise((done) => gpu.once('exit', done))));
    }
  }
  await native.close();
} finally {
  await server.stop();
}
