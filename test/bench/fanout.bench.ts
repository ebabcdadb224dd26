/**
 * `npm run bench:fanout`: how a round's wall time falls with its GPU workers. The real workflows
 * on a real dev server, a CPU worker in this process and W GPU worker processes whose activities
 * are stand-ins of fixed durations (`standInActivities.ts`), for W = 1, 2, 4, 8, 16. For each W it
 * prints the wall time; the ideal (the critical path with W workers: the shards' sample and judge
 * spread over W, training beside the references when W > 1); the efficiency (ideal / wall); the
 * mean task-queue latency (schedule to start, of the activities that found a worker free: the
 * CPU worker's and the first wave of shards); and the round's history (events, bytes).
 * Options: --workers 1,2,4,8,16 --shards N (32) --sample S (2) --judge S (1) --train S (6)
 * --references S (3) --evaluate S (2) --light S (0.2: prepare, curate, report).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';

import { startTemporal } from '../../cli/servers.js';
import { SelfRewardClient } from '../../client/index.js';
import { ACTIVITY_ROLES, activitiesOf, TASK_QUEUES } from '../../contract/workers.js';
import { WORKFLOWS_PATH } from '../../workers/plugin.js';
import { freePort, REPO_ROOT } from '../servers.js';
import { standInActivities, type StandInDurations } from './standInActivities.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2,4,8,16' },
    shards: { type: 'string', default: '32' },
    sample: { type: 'string', default: '2' },
    judge: { type: 'string', default: '1' },
    train: { type: 'string', default: '6' },
    references: { type: 'string', default: '3' },
    evaluate: { type: 'string', default: '2' },
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
  return d.prepare + shardWaves + d.curate + training + d.evaluate + d.report;
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

const scratch = await mkdtemp(join(tmpdir(), 'bench-fanout-'));
const port = await freePort();
const server = await startTemporal({ stateDir: scratch, port, uiPort: null });
const address = `127.0.0.1:${port}`;
try {
  const bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} } });
  const native = await NativeConnection.connect({ address });
  const client = new SelfRewardClient(new Client({ connection: await Connection.connect({ address }) }));
  const input = {
    generator: { base: '/models/generator' },
    judge: { detector: '/models/detector', clip: '/models/clip' },
    prompts: Array.from({ length: shards }, (_, i) => ({ className: 'circle', text: `circle ${i}` })),
    shards,
    evaluation: { prompts: [{ className: 'circle', text: 'a held-out circle' }] },
  };
  console.log(
    `fan-out: ${shards} shards, sample ${durations.sample} s + judge ${durations.judge} s each, train ${durations.train} s beside references ${durations.references} s, evaluate ${durations.evaluate} s`,
  );
  console.log('workers  wall s  ideal s  efficiency  queue latency ms  events  history KB');
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
      const time = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
      const scheduled = new Map(
        events.flatMap((e) =>
          e.activityTaskScheduledEventAttributes
            ? [[Number(e.eventId), { at: time(e.eventTime), type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '' }]]
            : [],
        ),
      );
      const starts = events.flatMap((e) => {
        const from = e.activityTaskStartedEventAttributes ? scheduled.get(Number(e.activityTaskStartedEventAttributes.scheduledEventId)) : undefined;
        return from === undefined ? [] : [{ type: from.type, wait: time(e.eventTime) - from.at }];
      });
      // Latency where a worker was free: the CPU worker's activities and the first wave of shards
      // (later shards wait for a GPU worker, which the ideal counts).
      const free = [...starts.filter((s) => !GPU_ACTIVITIES.has(s.type)), ...starts.filter((s) => s.type === 'sampleShard').slice(0, w)];
      const latency = free.reduce((sum, s) => sum + s.wait, 0) / free.length;
      const bytes = Buffer.byteLength(JSON.stringify(events));
      console.log(
        `${String(w).padStart(7)}  ${wall.toFixed(1).padStart(6)}  ${ideal(w).toFixed(1).padStart(7)}  ${(ideal(w) / wall).toFixed(3).padStart(10)}  ${latency.toFixed(0).padStart(16)}  ${String(events.length).padStart(6)}  ${(bytes / 1024).toFixed(0).padStart(10)}`,
      );
    } finally {
      for (const gpu of gpus) gpu.kill('SIGTERM');
      await Promise.all(gpus.map((gpu) => new Promise((done) => gpu.once('exit', done))));
    }
  }
  await native.close();
} finally {
  await server.stop();
  await rm(scratch, { recursive: true, force: true });
}
