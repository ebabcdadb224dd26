/**
 * One LoRA trained by two GPU workers together (`lora.workers`), with real worker processes (the
 * entry points), a real dev server, the real trainer and the shapes pack's test models: the
 * second worker joins the first's trainer and the LoRA is the one a single trainer makes; a
 * worker killed mid-training, or gone silent (a member or the leader), costs the round time, never the LoRA.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startTemporal, type RunningServer } from '../cli/servers.js';
import { SelfRewardClient } from '../client/index.js';
import type { TrainingMemberResult } from '../contract/activities.js';
import { artifactKeys, roundRoot } from '../contract/keys.js';
import { testGenerator } from '../models/testing/python.js';
import { LocalFolderStore } from '../store/local.js';
import { testDetector, tinyRoundInput } from './models.js';
import { freePort } from './servers.js';
import { until, WorkerProcess } from './workerProcess.js';

let scratch: string;
let temporal: RunningServer;
let temporalAddress: string;
let client: SelfRewardClient;
let input: Record<string, unknown>;

interface Metrics {
  readonly resumed_from: string | null;
  readonly loss_curve: readonly number[];
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'team-'));
  const port = await freePort();
  const [generator, detector, server] = await Promise.all([
    testGenerator(scratch),
    testDetector(scratch),
    startTemporal({ stateDir: join(scratch, 'temporal'), port, uiPort: null }),
  ]);
  temporal = server;
  temporalAddress = `127.0.0.1:${port}`;
  client = new SelfRewardClient(new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) }));
  input = tinyRoundInput(generator, detector, {
    sampling: { steps: 4 },
    lora: { maxSteps: 40, batchSize: 2, checkpointEvery: 4, workers: 2, workersWaitSeconds: 20 },
    activities: { heartbeatTimeoutSeconds: 15, maximumAttempts: 6 },
  });
}, 300_000);

afterAll(async () => {
  await WorkerProcess.stopAll();
  await temporal?.stop();
});

/** The results of the round's `joinTraining` activities, from its history. */
async function membersOf(workflowId: string): Promise<TrainingMemberResult[]> {
  const events = (await client.round(workflowId).workflow.fetchHistory()).events ?? [];
  const { defaultPayloadConverter } = await import('@temporalio/common');
  const scheduled = new Map(
    events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'joinTraining').map((e) => [String(e.eventId), true]),
  );
  return events
    .filter((e) => scheduled.has(String(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? '')))
    .map((e) => defaultPayloadConverter.fromPayload<TrainingMemberResult>(e.activityTaskCompletedEventAttributes!.result!.payloads![0]!));
}

/**
 * Two workers on a store of their own, and a 200-step round on them whose LoRA they train
 * together (with `lora` over the test's settings), once its first checkpoint is stored; `member`
 * is the worker that joined the training.
 */
async function teamRoundMidTraining(name: string, lora: Record<string, unknown>) {
  const store = new LocalFolderStore(join(scratch, `${name}-store`));
  const environment = { TEMPORAL_ADDRESS: temporalAddress, SELF_REWARD_STORE: store.root };
  const workers = await Promise.all([1, 2].map((n) => WorkerProcess.start(join(scratch, `${name}-work-${n}`), environment)));
  const long = { ...input, lora: { ...(input['lora'] as object), maxSteps: 200, workersWaitSeconds: 5, ...lora } };
  const round = await client.startRound(long, { workflowId: `${name}-${randomUUID()}` });
  const root = roundRoot(round.workflowId, (await round.workflow.describe()).runId, 1);
  await until(() => store.exists(artifactKeys.trainerCheckpointPointer(root)), 600_000, 'a stored trainer checkpoint');
  // The member is the worker with a joining trainer's folder.
  const member = workers.find((w) => existsSync(join(w.workDir, ...root.split('/'), 'train-member')));
  if (member === undefined) throw new Error('no worker joined the training');
  return { store, workers, round, root, member };
}

/**
 * A host gone from the network: the worker and its trainer (whose work folder is `folder` under
 * the worker's) answer nothing, and close no connection. Their process ids go to `frozen`, for
 * the test to SIGKILL at its end.
 */
async function silence(worker: WorkerProcess, folder: string, frozen: number[]): Promise<void> {
  const trainer = Number(await readFile(join(worker.workDir, folder, 'output', 'trainer.pid'), 'utf8'));
  for (const pid of [worker.pid!, trainer]) {
    process.kill(pid, 'SIGSTOP');
    frozen.push(pid);
  }
}

/** The round's LoRA has all 200 steps, the last of them trained by one worker, resumed from a stored checkpoint. */
async function finishedAloneFromCheckpoint(store: LocalFolderStore, round: Awaited<ReturnType<SelfRewardClient['startRound']>>): Promise<void> {
  const result = await round.result();
  expect(result.training).toMatchObject({ steps: 200, workers: 1 });
  const metrics = JSON.parse((await store.get(`${result.training.lora}metrics.json`)).toString()) as Metrics;
  expect(metrics.loss_curve).toHaveLength(200);
  expect(metrics.resumed_from).toMatch(/step-\d{8}$/);
}

describe('a LoRA trained by two GPU workers', () => {
  it('trains on both: the second worker joins the first one’s trainer', { timeout: 900_000 }, async () => {
    const store = new LocalFolderStore(join(scratch, 'together-store'));
    const environment = { TEMPORAL_ADDRESS: temporalAddress, SELF_REWARD_STORE: store.root };
    const workers = await Promise.all([1, 2].map((n) => WorkerProcess.start(join(scratch, `together-work-${n}`), environment)));
    try {
      const round = await client.startRound(input, { workflowId: `together-${randomUUID()}` });
      const result = await round.result();
      expect(result.training).toMatchObject({ steps: 40, workers: 2 });
      expect(await membersOf(round.workflowId)).toEqual([{ rank: 1, workers: 2 }]);
      const metrics = JSON.parse((await store.get(`${result.training.lora}metrics.json`)).toString()) as Metrics;
      expect(metrics.loss_curve).toHaveLength(40);
      expect((await store.get(result.report.report)).toString()).toContain('trained on 2 GPU workers of the 2 asked for');
      // The meeting is gone with the training: a later retry could not join a dead one.
      expect(await store.exists(artifactKeys.trainerMeeting(result.root))).toBe(false);
      // Each worker ran a trainer: the leader's log names the team, the member's its place in it.
      const logs = workers.map((w) => w.log).join('\n');
      expect(logs).toMatch(/trainer waits up to 20 s for 1 more worker\(s\) at [\d.]+:\d+/);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });

  it('finishes the LoRA from its checkpoint when the joining worker is killed mid-training', { timeout: 900_000 }, async () => {
    const { store, workers, round, member } = await teamRoundMidTraining('killed', {});
    try {
      await member.kill();
      // The leader's trainer lost its team, and its retry resumed from its checkpoint, alone.
      await finishedAloneFromCheckpoint(store, round);
      const events = (await round.workflow.fetchHistory()).events ?? [];
      const trainLora = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainLora')!;
      const attempts = events.flatMap((e) =>
        String(e.activityTaskStartedEventAttributes?.scheduledEventId ?? '') === String(trainLora.eventId)
          ? [e.activityTaskStartedEventAttributes!.attempt ?? 1]
          : [],
      );
      expect(Math.max(...attempts)).toBeGreaterThan(1);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });

  it('finishes the LoRA from its checkpoint when the joining worker’s host goes silent mid-training', { timeout: 900_000 }, async () => {
    const { store, workers, round, root, member } = await teamRoundMidTraining('silent', { stallSeconds: 5 });
    const frozen: number[] = [];
    try {
      await silence(member, join(...root.split('/'), 'train-member'), frozen);
      // The leader's trainer, left waiting for the silent one, was stopped as hung, and its retry trained alone.
      await finishedAloneFromCheckpoint(store, round);
      const events = (await round.workflow.fetchHistory()).events ?? [];
      const trainLora = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainLora')!;
      const started = events.find((e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId ?? '') === String(trainLora.eventId));
      expect(started?.activityTaskStartedEventAttributes?.lastFailure?.applicationFailureInfo?.type).toBe('TrainerStalled');
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGKILL');
      await Promise.all(workers.map((w) => w.stop()));
    }
  });

  it('finishes the LoRA from its checkpoint when the leading worker’s host goes silent mid-training', { timeout: 900_000 }, async () => {
    const { store, workers, round, root, member } = await teamRoundMidTraining('silent-leader', { stallSeconds: 5 });
    const leader = workers.find((w) => w !== member)!;
    const frozen: number[] = [];
    try {
      await silence(leader, join(...root.split('/'), 'train'), frozen);
      // The member's worker is the only one left: the leader's retry trains there once the member
      // stops waiting on the silent leader, not after the collective timeout's two hours.
      await finishedAloneFromCheckpoint(store, round);
      expect(await readFile(member.logFile, 'utf8')).toMatch(/the team made no step for 5 s after step \d+ \(lora\.stallSeconds\)/);
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGKILL');
      await Promise.all(workers.map((w) => w.stop()));
    }
  });
});
