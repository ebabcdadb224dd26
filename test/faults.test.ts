/**
 * The servers a round depends on failing under it, with real worker processes (the entry
 * points), the real trainer and the shapes pack's models on a tiny round: the Temporal server
 * killed and restarted on its state file mid-round; the S3 server gone for 60 s mid-round (the
 * round waits, retries and completes), with a worker killed as well, on the S3 store; and a
 * graceful stop (SIGTERM, as `docker compose stop` sends) during training, after which another
 * worker resumes from the checkpoint the stopped one stored.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startS3Server, startTemporal, type RunningServer } from '../cli/servers.js';
import { SelfRewardClient } from '../client/index.js';
import { artifactKeys, roundRoot } from '../contract/keys.js';
import type { RoundResult } from '../contract/workflows.js';
import { testGenerator } from '../models/testing/python.js';
import type { StoredCheckpoint } from '../activities/trainer/checkpoints.js';
import { LocalFolderStore } from '../store/local.js';
import { getJson } from '../store/store.js';
import { S3Store } from '../store/s3.js';
import { testDetector, tinyRoundInput } from './models.js';
import { freePort } from './servers.js';
import { processesMentioning, until, WorkerProcess } from './workerProcess.js';

let scratch: string;
let input: Record<string, unknown>;
/** A round whose training lasts long enough (seconds) for a stop to land in it. */
let longTraining: Record<string, unknown>;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'faults-'));
  const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
  input = tinyRoundInput(generator, detector, {
    sampling: { steps: 4 },
    lora: { maxSteps: 16, batchSize: 2, checkpointEvery: 4 },
    activities: { heartbeatTimeoutSeconds: 15, maximumAttempts: 6 },
  });
  longTraining = { ...input, lora: { maxSteps: 120, batchSize: 2, checkpointEvery: 4 } };
});

afterAll(async () => {
  await WorkerProcess.stopAll();
});

/** A local dev server on a state file, which a restart on the same port and file carries on from. */
async function temporalOn(state: string, port: number): Promise<RunningServer> {
  return startTemporal({ stateDir: state, port, uiPort: null });
}

async function clientOn(port: number): Promise<SelfRewardClient> {
  return new SelfRewardClient(new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) }));
}

interface Metrics {
  readonly resumed_from: string | null;
  readonly loss_curve: readonly number[];
}

describe('a round whose servers fail', () => {
  it('completes when the Temporal server is killed and restarted on its state file mid-round', { timeout: 900_000 }, async () => {
    const state = join(scratch, 'temporal-restart');
    const port = await freePort();
    let server = await temporalOn(state, port);
    const store = new LocalFolderStore(join(scratch, 'restart-store'));
    const worker = await WorkerProcess.start(join(scratch, 'restart-work'), { TEMPORAL_ADDRESS: `127.0.0.1:${port}`, SELF_REWARD_STORE: store.root });
    try {
      const round = await (await clientOn(port)).startRound(input, { workflowId: `restart-${randomUUID()}` });
      const root = roundRoot(round.workflowId, (await round.workflow.describe()).runId, 1);
      await until(async () => (await store.list(`${root}/scores/`)).length > 0, 300_000, 'judging under way');
      server.child.kill('SIGKILL');
      await new Promise((r) => server.child.once('exit', r));
      await new Promise((r) => setTimeout(r, 3000));
      server = await temporalOn(state, port);
      // The worker reconnects by itself; the round carries on from its history on the state file.
      const result = await (await clientOn(port)).round(round.workflowId).result();
      expect(result.root).toBe(root);
      expect(result.training.steps).toBe(16);
      expect(await store.exists(result.report.report)).toBe(true);
      expect(worker.log).not.toMatch(/Worker state changed[^\n]*FAILED/);
    } finally {
      await worker.stop();
      await server.stop();
    }
  });

  it('completes on the S3 store when the S3 server is gone for 60 s and a worker is killed', { timeout: 900_000 }, async () => {
    const temporalPort = await freePort();
    const s3Port = await freePort();
    const temporal = await temporalOn(join(scratch, 'temporal-s3'), temporalPort);
    const keys = { accessKey: 'faults-access', secretKey: 'faults-secret-key' };
    const folder = join(scratch, 's3-data');
    let s3 = await startS3Server({ folder, port: s3Port, ...keys });
    const environment = {
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      SELF_REWARD_STORE: 's3://artifacts/faults',
      S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
      S3_ACCESS_KEY: keys.accessKey,
      S3_SECRET_KEY: keys.secretKey,
    };
    const store = new S3Store({ endpoint: environment.S3_ENDPOINT, bucket: 'artifacts', ...keys, region: 'us-east-1', prefix: 'faults/' });
    let worker = await WorkerProcess.start(join(scratch, 's3-work-1'), environment);
    try {
      const round = await (await clientOn(temporalPort)).startRound(input, { workflowId: `s3-outage-${randomUUID()}` });
      const root = roundRoot(round.workflowId, (await round.workflow.describe()).runId, 1);
      // Sampling under way: the worker dies, then the store goes for a minute.
      await until(async () => (await store.list(`${root}/samples/`)).length > 0, 300_000, 'first sampled image');
      await worker.kill();
      worker = await WorkerProcess.start(join(scratch, 's3-work-2'), environment);
      await s3.stop();
      const outage = Date.now();
      await new Promise((r) => setTimeout(r, 60_000));
      s3 = await startS3Server({ folder, port: s3Port, ...keys });
      const result: RoundResult = await (await clientOn(temporalPort)).round(round.workflowId).result();
      expect(Date.now() - outage).toBeGreaterThan(60_000);
      expect(result.training.steps).toBe(16);
      expect(await store.exists(result.report.report)).toBe(true);
      expect(await store.exists(artifactKeys.sampleManifest(root, 0))).toBe(true);
      // The outage was retried: some activity's attempt failed while the store was away.
      const events = (await round.workflow.fetchHistory()).events ?? [];
      expect(events.some((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1)).toBe(true);
    } finally {
      await worker.stop();
      await s3.stop();
      await temporal.stop();
    }
  });

  it('resumes from its checkpoint on another worker when the training worker is stopped gracefully', { timeout: 900_000 }, async () => {
    const temporalPort = await freePort();
    const temporal = await temporalOn(join(scratch, 'temporal-sigterm'), temporalPort);
    const store = new LocalFolderStore(join(scratch, 'sigterm-store'));
    const environment = { TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`, SELF_REWARD_STORE: store.root };
    // No grace: the stop cancels the training at once, rather than letting this short one finish.
    const first = await WorkerProcess.start(join(scratch, 'sigterm-work-1'), { ...environment, SELF_REWARD_SHUTDOWN_GRACE_SECONDS: '0' });
    try {
      const round = await (await clientOn(temporalPort)).startRound(longTraining, { workflowId: `sigterm-${randomUUID()}` });
      const root = roundRoot(round.workflowId, (await round.workflow.describe()).runId, 1);
      await until(() => store.exists(artifactKeys.trainerCheckpointPointer(root)), 600_000, 'a stored trainer checkpoint');
      expect(await processesMentioning(first.workDir)).not.toEqual([]);
      const storedStep = async () => (await getJson<StoredCheckpoint>(store, artifactKeys.trainerCheckpointPointer(root))).step;
      const before = await storedStep();
      // SIGTERM: the worker cancels its activities; the trainer checkpoints, the checkpoint is stored, the worker exits.
      await first.stop();
      expect(await processesMentioning(first.workDir)).toEqual([]);
      expect(await store.exists(artifactKeys.trainManifest(root))).toBe(false);
      const stopped = await storedStep();
      expect(stopped).toBeGreaterThanOrEqual(before);
      expect(stopped).toBeLessThan(120);
      const second = await WorkerProcess.start(join(scratch, 'sigterm-work-2'), environment);
      const result = await (await clientOn(temporalPort)).round(round.workflowId).result();
      const metrics = JSON.parse((await store.get(`${result.training.lora}metrics.json`)).toString()) as Metrics;
      expect(metrics.resumed_from).toContain(second.workDir);
      expect(metrics.resumed_from).toMatch(new RegExp(`step-${String(stopped).padStart(8, '0')}$`));
      expect(metrics.loss_curve).toHaveLength(120);
    } finally {
      await temporal.stop();
    }
  });
});
