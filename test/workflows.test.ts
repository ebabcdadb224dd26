/**
 * Workflows against a real local Temporal dev server (the venv's `temporal` CLI), with the
 * search attributes registered as the local stack registers them. Where a test is about
 * orchestration only, the round's activities are stand-ins returning made-up figures.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure, Context } from '@temporalio/activity';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RoundInput } from '../config/round.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { dependenciesFromEnvironment } from '../workers/dependencies.js';
import { selfRewardPlugin, WORKFLOWS_PATH } from '../workers/plugin.js';
import { requireBinary, TEMPORAL_CLI } from './servers.js';
import { type RoundActivities } from '../contract/activities.js';
import { activitiesOf, TASK_QUEUES } from '../contract/workers.js';
import { trainingRoot } from '../contract/keys.js';
import type { RoundProgress } from '../contract/progress.js';
import { progressQuery, type CampaignResult, type RoundFigures, type RoundResult } from '../contract/workflows.js';
import { standInPreparation, standInValidation } from './activity.js';
import { recordHistory } from './stack.js';

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: requireBinary(TEMPORAL_CLI) },
      dbFilename: join(await mkdtemp(join(tmpdir(), 'temporal-')), 'test.sqlite'),
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
    },
  });
});

afterAll(async () => {
  await env?.teardown();
});

async function failureOf(run: Promise<unknown>): Promise<ApplicationFailure> {
  const error = await run.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WorkflowFailedError);
  const cause = (error as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

describe('input validation, on a worker that takes the workflows from the plugin', () => {
  it('fails a round at once with a non-retryable error naming the field and the expected value', async () => {
    const plugin = selfRewardPlugin({
      role: 'cpu',
      dependencies: dependenciesFromEnvironment({ SELF_REWARD_STORE: await mkdtemp(join(tmpdir(), 'plugin-store-')) }),
    });
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: TASK_QUEUES.workflows, plugins: [plugin] });
    await worker.runUntil(async () => {
      const round = await failureOf(
        env.client.workflow.execute('selfRewardRound', {
          taskQueue: TASK_QUEUES.workflows,
          workflowId: `round-${randomUUID()}`,
          args: [
            {
              generator: { base: 'g' },
              judge: { detector: 'd', clip: 'c' },
              prompts: { file: 'p' },
              evaluation: { prompts: { file: 'e' } },
              samplesPerPrompt: 0,
            },
          ],
        }),
      );
      expect(round.type).toBe('InvalidInput');
      expect(round.nonRetryable).toBe(true);
      expect(round.message).toContain('samplesPerPrompt: expected an integer in [1, 1000], got 0');

      const campaign = await failureOf(
        env.client.workflow.execute('selfRewardCampaign', { taskQueue: TASK_QUEUES.workflows, workflowId: `campaign-${randomUUID()}`, args: [{ rounds: 2 }] }),
      );
      expect(campaign.type).toBe('InvalidInput');
      expect(campaign.message).toContain('round: expected');
    });
  });
});

/** What the stand-in activities saw: the input of every round they sampled for. */
interface StandIns {
  readonly activities: RoundActivities;
  readonly sampledRounds: RoundInput[];
}

/**
 * The round's activities as stand-ins: figures derived from the round number (win rate
 * 0.5 + round / 100, so rounds keep improving), artifact keys under the round's folder. With
 * `hold`, training of that round waits until the test releases it.
 */
function standIns(hold?: { readonly round: number; readonly reached: () => void; readonly release: Promise<void> }): StandIns {
  const sampledRounds: RoundInput[] = [];
  const { prepareRound, inputOf } = standInPreparation();
  const activities: RoundActivities = {
    prepareRound,
    sampleShard: async (request) => {
      const { root, shard } = request;
      const input = inputOf(request);
      if (shard === 0) sampledRounds.push(input);
      return { shard, manifest: `${root}/samples/${shard}.json`, prompts: 1, images: input.samplesPerPrompt, classes: ['circle'] };
    },
    judgeShard: async ({ root, shard }) => ({ shard, manifest: `${root}/scores/${shard}.json`, images: 1, detected: 1 }),
    joinTraining: async () => ({ rank: null, workers: null }),
    sampleReferences: async () => ({ images: 1 }),
    evaluateShard: async ({ shard }) => ({ shard, prompts: 1, images: 2 }),
    sampleValidationBase: async () => ({ images: 1 }),
    validateLora: standInValidation,
    curateDataset: async ({ root }) => ({ manifest: `${root}/dataset.json`, dataset: `${root}/dataset/`, kept: 1, included: 0, dropped: 0, perClass: {} }),
    trainLora: async (request) => {
      const { root } = request;
      if (hold !== undefined && inputOf(request).round === hold.round) {
        hold.reached();
        await hold.release;
      }
      return { manifest: `${root}/lora.json`, lora: `${root}/lora/`, steps: 1, finalLoss: 0.1 };
    },
    evaluateRound: async (request) => {
      const { root } = request;
      const input = inputOf(request);
      return {
        manifest: `${root}/evaluation.json`,
        pairs: 4,
        winRate: 0.5 + input.round / 100,
        winRateInterval: [0.4, 0.6 + input.round / 100],
        meanClipBase: 0.2,
        meanClipTuned: 0.2 + input.round / 100,
        signTestP: 0.5,
        accuracyBase: 0.3,
        accuracyTuned: 0.3 + input.round / 100,
        accuracyGainInterval: [-0.1, 0.1 + input.round / 100],
        diversityBase: 0.3,
        diversityTuned: 0.3 - input.round / 100,
        diversityChange: (0.3 - input.round / 100) / 0.3 - 1,
        countAccuracyBase: 0.4,
        countAccuracyTuned: 0.4 + input.round / 100,
        countGainInterval: [-0.1, 0.1 + input.round / 100],
        perClass: {},
        referee: null,
        parent: null,
      };
    },
    writeReport: async ({ root }) => ({ report: `${root}/report.html`, location: `/reports/${root}/report.html` }),
  };
  return { activities, sampledRounds };
}

const campaignRoundInput = {
  generator: { base: '/models/generator' },
  judge: { detector: '/models/detector', clip: '/models/clip' },
  prompts: [{ className: 'circle', text: 'one red circle' }],
  samplesPerPrompt: 2,
  shards: 1,
  evaluation: { prompts: [{ className: 'circle', text: 'two red circles' }] },
};

/** The runs of a workflow id from its first, following each continue-as-new, with their histories. */
async function runChain(workflowId: string, firstRunId: string) {
  const runs = [];
  for (let runId: string | null | undefined = firstRunId; runId;) {
    // Typed by hand: inferring it would run through `runId`, which the loop assigns from it.
    const history: Awaited<ReturnType<WorkflowHandle['fetchHistory']>> = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events = history.events ?? [];
    runs.push({
      runId,
      childStarts: events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes).length,
      signals: events.filter((e) => e.workflowExecutionSignaledEventAttributes).length,
    });
    runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
  }
  return runs;
}

let bundle: WorkflowBundleWithSourceMap | undefined;

/** Runs `run` while a workflow worker and a GPU-queue worker serve the stand-in activities. */
async function withStandInWorkers<T>(activities: RoundActivities, run: () => Promise<T>): Promise<T> {
  // Bundled once: each worker would otherwise bundle the workflows again.
  bundle ??= await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH });
  const connection = env.nativeConnection;
  const workflows = await Worker.create({
    connection,
    taskQueue: TASK_QUEUES.workflows,
    workflowBundle: bundle,
    activities: activitiesOf('cpu', activities),
  });
  const gpu = await Worker.create({
    connection,
    taskQueue: TASK_QUEUES.gpu,
    activities: activitiesOf('gpu', activities),
    maxConcurrentActivityTaskExecutions: 200,
    // Cancellations reach an activity with its heartbeats' replies: soon, for the stand-ins.
    maxHeartbeatThrottleInterval: '200ms',
  });
  return workflows.runUntil(gpu.runUntil(run));
}

/** A round of `input` on the stand-ins: its result, its last progress and its details, line by line. */
async function standInRound(activities: RoundActivities, input: Record<string, unknown>, idPrefix: string) {
  return withStandInWorkers(activities, async () => {
    const handle = await env.client.workflow.start('selfRewardRound', {
      taskQueue: TASK_QUEUES.workflows,
      workflowId: `${idPrefix}-${randomUUID()}`,
      args: [input],
    });
    const result = (await handle.result()) as RoundResult;
    const { currentDetails } = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    return { result, progress: await handle.query(progressQuery), details: (currentDetails ?? '').split('\n') };
  });
}

describe('selfRewardCampaign across continue-as-new', () => {
  it("keeps every round's figures, samples each round from the previous LoRA and finishes all rounds", async () => {
    const { activities, sampledRounds } = standIns();
    const workflowId = `campaign-${randomUUID()}`;
    const { result, firstRunId, queried } = await withStandInWorkers(activities, async () => {
      const handle = await env.client.workflow.start('selfRewardCampaign', {
        taskQueue: TASK_QUEUES.workflows,
        workflowId,
        args: [{ round: campaignRoundInput, rounds: 3, patience: 3, continueAsNewEveryRounds: 1 }],
      });
      const result = (await handle.result()) as CampaignResult;
      return { result, firstRunId: handle.firstExecutionRunId, queried: await env.client.workflow.getHandle(workflowId).query<RoundFigures[]>('rounds') };
    });

    // One round per run: the first two runs each continued as new after their round.
    expect((await runChain(workflowId, firstRunId)).map((run) => run.childStarts)).toEqual([1, 1, 1]);
    expect(result.stopReason).toBe('all 3 rounds done');
    // Each round's LoRA lies under its own workflow id and run.
    const loraKey = (n: number) => new RegExp(`^runs/${encodeURIComponent(`${workflowId}-round-${n}`)}/[0-9a-f-]{36}/round-00${n}/lora/$`);
    expect(result.rounds.map((r) => [r.round, r.workflowId, r.winRate])).toEqual([1, 2, 3].map((n) => [n, `${workflowId}-round-${n}`, 0.5 + n / 100]));
    for (const r of result.rounds) expect(r.lora).toMatch(loraKey(r.round));
    expect(queried).toEqual(result.rounds);
    // Figures carried from an earlier run drive the next round: it samples from that round's LoRA.
    expect(sampledRounds.map((input) => [input.round, input.generator.tunedUnet])).toEqual([
      [1, null],
      [2, result.rounds[0]!.lora],
      [3, result.rounds[1]!.lora],
    ]);
  });

  it("stops after the current round when asked in a later run, with the earlier runs' rounds in its result", async () => {
    let reached!: () => void;
    let release!: () => void;
    const trainingRound2 = new Promise<void>((resolve) => (reached = resolve));
    const { activities } = standIns({ round: 2, reached, release: new Promise<void>((resolve) => (release = resolve)) });
    const workflowId = `campaign-${randomUUID()}`;
    const { result, firstRunId } = await withStandInWorkers(activities, async () => {
      const handle = await env.client.workflow.start('selfRewardCampaign', {
        taskQueue: TASK_QUEUES.workflows,
        workflowId,
        args: [{ round: campaignRoundInput, rounds: 4, patience: 4, continueAsNewEveryRounds: 1 }],
      });
      await trainingRound2;
      await env.client.workflow.getHandle(workflowId).signal('stopAfterCurrentRound');
      release();
      return { result: (await handle.result()) as CampaignResult, firstRunId: handle.firstExecutionRunId };
    });

    const runs = await runChain(workflowId, firstRunId);
    expect(runs.map((run) => [run.childStarts, run.signals])).toEqual([
      [1, 0],
      [1, 1],
    ]);
    expect(result.stopReason).toBe('stop requested');
    expect(result.rounds.map((r) => [r.round, r.winRate])).toEqual([
      [1, 0.51],
      [2, 0.52],
    ]);
  });

  it('honours a stop carried into a new run before starting any round', async () => {
    const { activities, sampledRounds } = standIns();
    const earlier: RoundFigures = {
      round: 1,
      workflowId: 'earlier-round-1',
      winRate: 0.6,
      winRateInterval: [0.5, 0.7],
      meanClipTuned: 0.3,
      accuracyTuned: 0.4,
      kept: 1,
      lora: 'runs/earlier-round-1/round-001/lora/',
      report: '/reports/earlier',
    };
    const workflowId = `campaign-${randomUUID()}`;
    const { result, firstRunId } = await withStandInWorkers(activities, async () => {
      const handle = await env.client.workflow.start('selfRewardCampaign', {
        taskQueue: TASK_QUEUES.workflows,
        workflowId,
        args: [
          { round: campaignRoundInput, rounds: 3, continueAsNewEveryRounds: 1 },
          { rounds: [earlier], stopRequested: true },
        ],
      });
      return { result: (await handle.result()) as CampaignResult, firstRunId: handle.firstExecutionRunId };
    });
    expect(result).toEqual({ rounds: [earlier], stopReason: 'stop requested' });
    expect((await runChain(workflowId, firstRunId)).map((run) => run.childStarts)).toEqual([0]);
    expect(sampledRounds).toEqual([]);
  });
});

describe('a round at the limits of its input', () => {
  it('runs 1000 classes in 1000 shards with a bounded history, classes attribute and details', { timeout: 300_000 }, async () => {
    const classes = Array.from({ length: 1000 }, (_, i) => `class-${String(i).padStart(4, '0')}`);
    const counts = Object.fromEntries(classes.map((c) => [c, { kept: 1, dropped: 0, reasons: {} }]));
    const { activities } = standIns();
    const { prepareRound } = activities;
    const scaled: RoundActivities = {
      ...activities,
      prepareRound: async (request) => ({ ...(await prepareRound(request)), classes, prompts: classes.length }),
      sampleShard: async (request) => ({ ...(await activities.sampleShard(request)), classes: [classes[request.shard]!] }),
      curateDataset: async (request) => ({ ...(await activities.curateDataset(request)), kept: classes.length, perClass: counts }),
    };
    const input = {
      ...campaignRoundInput,
      prompts: classes.map((className) => ({ className, text: `one ${className}` })),
      shards: 1000,
      samplesPerPrompt: 1,
    };
    const workflowId = `scale-${randomUUID()}`;
    const { result, progress, details, attributes, events } = await withStandInWorkers(scaled, async () => {
      const handle = await env.client.workflow.start('selfRewardRound', { taskQueue: TASK_QUEUES.workflows, workflowId, args: [input] });
      const result = (await handle.result()) as RoundResult;
      const progress = await handle.query<RoundProgress>('progress');
      const { searchAttributes } = await handle.describe();
      // The workflow's current details, which the Web UI shows on the round's page.
      const { currentDetails } = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      return { result, progress, details: currentDetails ?? '', attributes: searchAttributes, events: (await handle.fetchHistory()).events ?? [] };
    });

    expect(result.samples).toHaveLength(1000);
    expect(result.judged).toHaveLength(1000);
    expect(progress.shards).toEqual({ total: 1000, sampled: 1000, judged: 1000 });
    // One line per stage, however many shards.
    const lines = details.split('\n');
    expect(lines).toHaveLength(7);
    expect(lines[0]).toBe('checked the input: 1000 training and 1 held-out prompts of 1000 classes');
    expect(lines[1]).toBe('sampled 1000 of 1000 shards: 1000 images of 1000 prompts');
    expect(lines[2]).toBe('judged 1000 of 1000 shards: the class found in 1000 of 1000 images');
    // The classes attribute is the first of the sorted classes that fit in 1000 bytes; the full list is in the stored input.
    const listed = attributes[SEARCH_ATTRIBUTES.classes.name] as string[];
    expect(listed.length).toBeGreaterThan(10);
    expect(listed).toEqual(classes.slice(0, listed.length));
    expect(JSON.stringify(listed).length).toBeLessThanOrEqual(1000);
    // Each stage is handed a reference to the stored input, never the input itself: a shard's
    // request is a few hundred bytes, and the history stays far from the server's limits
    // (51,200 events, 50 MB).
    const scheduled = events.flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes] : []));
    const requestBytes = (type: string) =>
      Math.max(...scheduled.filter((a) => a.activityType?.name === type).map((a) => (a.input?.payloads ?? []).reduce((n, p) => n + (p.data?.length ?? 0), 0)));
    expect(requestBytes('sampleShard')).toBeLessThan(500);
    expect(requestBytes('judgeShard')).toBeLessThan(500);
    expect(events.length).toBeLessThan(10_000);
  });
});

/**
 * A stand-in for a long stage: heartbeats until cancelled, then takes `stoppingMs` to stop (as a
 * trainer writes its checkpoint) and records when it had stopped.
 */
async function runUntilCancelled(stoppingMs: number, stopped: number[]): Promise<never> {
  const context = Context.current();
  while (!context.cancellationSignal.aborted) {
    context.heartbeat();
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, stoppingMs));
  stopped.push(Date.now());
  throw new CancelledFailure('stopped');
}

describe('stages that run side by side', () => {
  const input = { ...campaignRoundInput, activities: { heartbeatTimeoutSeconds: 15, maximumAttempts: 1 } };

  it('a cancelled round ends only after the training has stopped, however soon the references stop', { timeout: 60_000 }, async () => {
    const stopped: number[] = [];
    let reached: () => void = () => undefined;
    const training = new Promise<void>((r) => (reached = r));
    const { activities } = standIns();
    const slow: RoundActivities = {
      ...activities,
      trainLora: async () => {
        reached();
        return runUntilCancelled(3000, stopped);
      },
      sampleReferences: () => runUntilCancelled(0, []),
    };
    const { error, endedAt } = await withStandInWorkers(slow, async () => {
      const handle = await env.client.workflow.start('selfRewardRound', {
        taskQueue: TASK_QUEUES.workflows,
        workflowId: `side-${randomUUID()}`,
        args: [input],
      });
      await training;
      await handle.cancel();
      const error = await handle.result().catch((e: unknown) => e);
      return { error, endedAt: Date.now() };
    });
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(stopped).toHaveLength(1);
    expect(stopped[0]).toBeLessThanOrEqual(endedAt);
  });

  it('a shard that fails for good cancels the others, and the round fails with its failure once they have stopped', { timeout: 60_000 }, async () => {
    const stopped: number[] = [];
    const { activities } = standIns();
    const failing: RoundActivities = {
      ...activities,
      sampleShard: async (request) => {
        if (request.shard === 0) {
          await new Promise((r) => setTimeout(r, 500));
          throw ApplicationFailure.nonRetryable('shard 0: no such prompt file', 'InvalidInput');
        }
        return runUntilCancelled(2000, stopped);
      },
    };
    const { error, endedAt } = await withStandInWorkers(failing, async () => {
      const handle = await env.client.workflow.start('selfRewardRound', {
        taskQueue: TASK_QUEUES.workflows,
        workflowId: `side-${randomUUID()}`,
        args: [{ ...input, shards: 3, samplesPerPrompt: 1, prompts: [1, 2, 3].map((n) => ({ className: 'circle', text: `${n} red circles` })) }],
      });
      const error = await handle.result().catch((e: unknown) => e);
      return { error, endedAt: Date.now() };
    });
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const activityFailure = (error as WorkflowFailedError).cause;
    expect(activityFailure).toBeInstanceOf(ActivityFailure);
    expect((activityFailure as ActivityFailure).cause).toMatchObject({ type: 'InvalidInput', message: 'shard 0: no such prompt file' });
    expect(stopped).toHaveLength(2);
    expect(Math.max(...stopped)).toBeLessThanOrEqual(endedAt);
  });
});

describe("a round's details", () => {
  it('keep one line for sampling and one for judging when the shards alternate between them', { timeout: 60_000 }, async () => {
    const { activities } = standIns();
    let firstJudged: () => void = () => undefined;
    const judgedFirst = new Promise<void>((r) => (firstJudged = r));
    // Shard 1 is sampled only once shard 0 is judged: the stages' lines alternate sampled, judged, sampled, judged.
    const alternating: RoundActivities = {
      ...activities,
      sampleShard: async (request) => {
        if (request.shard === 1) await judgedFirst;
        return activities.sampleShard(request);
      },
      judgeShard: async (request) => {
        const judged = await activities.judgeShard(request);
        if (request.shard === 0) setTimeout(firstJudged, 500);
        return judged;
      },
    };
    const input = { ...campaignRoundInput, shards: 2, prompts: [1, 2].map((n) => ({ className: 'circle', text: `${n} red circles` })) };
    const details = await withStandInWorkers(alternating, async () => {
      const handle = await env.client.workflow.start('selfRewardRound', {
        taskQueue: TASK_QUEUES.workflows,
        workflowId: `details-${randomUUID()}`,
        args: [input],
      });
      await handle.result();
      const { currentDetails } = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      return (currentDetails ?? '').split('\n');
    });
    expect(details).toHaveLength(7);
    expect(details[1]).toMatch(/^sampled 2 of 2 shards/);
    expect(details[2]).toMatch(/^judged 2 of 2 shards/);
  });
});

describe("a round's evaluation", () => {
  /** A round of `shards` shards whose evaluation has `heldOut` prompts: the evaluation's shards, in the order they were called, and the round's end. */
  async function evaluatedIn(shards: number, heldOut: number) {
    const { activities } = standIns();
    const calls: string[] = [];
    let started = 0;
    let allStarted: () => void = () => undefined;
    const sideBySide = new Promise<void>((r) => (allStarted = r));
    const expected = Math.min(shards, heldOut);
    const sharded: RoundActivities = {
      ...activities,
      prepareRound: async (request) => ({ ...(await activities.prepareRound(request)), heldOutPrompts: heldOut }),
      evaluateShard: async (request) => {
        calls.push(`shard ${request.shard} of ${request.shards} (${request.lora})`);
        // Each shard waits for all of them to have started: they only finish if they run side by side.
        if (++started === expected) allStarted();
        await sideBySide;
        return { shard: request.shard, prompts: 1, images: 10 };
      },
      evaluateRound: async (request) => {
        calls.push('figures');
        return activities.evaluateRound(request);
      },
    };
    const input = { ...campaignRoundInput, shards, prompts: Array.from({ length: shards }, (_, n) => ({ className: 'circle', text: `${n + 1} red circles` })) };
    const { result, progress, details } = await standInRound(sharded, input, 'evaluated');
    return { calls, result, progress, details };
  }

  it(
    'samples and judges the held-out images in as many shards as the round samples in, side by side, then computes the figures',
    { timeout: 60_000 },
    async () => {
      const { calls, result, progress, details } = await evaluatedIn(3, 5);
      const lora = result.training.lora;
      expect(calls.slice(0, 3).sort()).toEqual([0, 1, 2].map((shard) => `shard ${shard} of 3 (${lora})`));
      expect(calls.slice(3)).toEqual(['figures']);
      // The figures' line replaces the shards' line: one line for the stage.
      expect(details.filter((line) => line.startsWith('evaluat'))).toEqual([expect.stringMatching(/^evaluated: tuned beats base/)]);
      expect(progress.evaluated).toBe(result.evaluation.pairs * 2);
    },
  );

  it('takes one shard per held-out prompt when there are fewer prompts than shards', { timeout: 60_000 }, async () => {
    const { calls } = await evaluatedIn(3, 2);
    expect(calls.filter((c) => c.startsWith('shard')).sort()).toEqual([expect.stringMatching(/^shard 0 of 2 /), expect.stringMatching(/^shard 1 of 2 /)]);
  });
});

describe("a round's training", () => {
  it('shows the trained LoRA as soon as it ends, while the references are still sampled', { timeout: 60_000 }, async () => {
    const { activities } = standIns();
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    const slowReferences: RoundActivities = {
      ...activities,
      sampleReferences: async (request) => {
        await released;
        return activities.sampleReferences(request);
      },
    };
    const seen = await withStandInWorkers(slowReferences, async () => {
      const handle = await env.client.workflow.start('selfRewardRound', {
        taskQueue: TASK_QUEUES.workflows,
        workflowId: `trained-${randomUUID()}`,
        args: [campaignRoundInput],
      });
      let progress = await handle.query(progressQuery);
      while (progress.trainer === null) {
        await new Promise((r) => setTimeout(r, 100));
        progress = await handle.query(progressQuery);
      }
      release();
      await handle.result();
      return progress;
    });
    expect(seen).toMatchObject({ stage: 'train', trainer: { step: 1, steps: 1, loss: 0.1 } });
  });
});

describe('a LoRA trained by several GPU workers (`lora.workers`)', () => {
  it(
    'schedules the leader first, then the others, cancels those the leader no longer needs once it is done, and samples the references in as many parts after them',
    { timeout: 60_000 },
    async () => {
      const { activities } = standIns();
      const stopped: number[] = [];
      let joined = 0;
      const team: RoundActivities = {
        ...activities,
        // The first joining worker trains with the leader; the others stay until they are cancelled.
        joinTraining: async () => {
          joined += 1;
          if (joined === 1) return { rank: 1, workers: 2 };
          return runUntilCancelled(0, stopped);
        },
        trainLora: async (request) => ({ ...(await activities.trainLora(request)), workers: 2 }),
        prepareRound: async (request) => ({ ...(await activities.prepareRound(request)), heldOutPrompts: 4 }),
      };
      const { result, events } = await withStandInWorkers(team, async () => {
        const handle = await env.client.workflow.start('selfRewardRound', {
          taskQueue: TASK_QUEUES.workflows,
          workflowId: `team-${randomUUID()}`,
          args: [{ ...campaignRoundInput, lora: { workers: 3 } }],
        });
        const result = (await handle.result()) as RoundResult;
        await recordHistory(env, handle.workflowId);
        return { result, events: (await handle.fetchHistory()).events ?? [] };
      });
      const scheduled = events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
      expect(scheduled.filter((name) => name === 'trainLora' || name === 'joinTraining')).toEqual(['trainLora', 'joinTraining', 'joinTraining']);
      expect(events.filter((e) => e.activityTaskCanceledEventAttributes)).toHaveLength(1);
      // The references wait for the workers that train, then take as many of them at once. They
      // are scheduled after a head start of the team's activities, which idle workers take first.
      expect(scheduled.filter((name) => name === 'sampleReferences')).toHaveLength(3);
      const position = (found: (e: (typeof events)[number]) => boolean) => events.findIndex(found);
      const headStart = position((e) => e.timerFiredEventAttributes !== null && e.timerFiredEventAttributes !== undefined);
      expect(headStart).toBeGreaterThan(position((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'joinTraining'));
      expect(position((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sampleReferences')).toBeGreaterThan(headStart);
      expect(result.training.workers).toBe(2);
      expect(stopped).toHaveLength(1);
    },
  );
});

describe('several LoRAs from one dataset (`lora.seeds`)', () => {
  it('trains them side by side with their own seeds and keys, validates each, and evaluates only the kept one', { timeout: 60_000 }, async () => {
    const { activities } = standIns();
    const trained: { seed: number | undefined; dataset: string }[] = [];
    let started = 0;
    let allStarted: () => void = () => undefined;
    const together = new Promise<void>((r) => (allStarted = r));
    const validated: string[] = [];
    const evaluated: string[] = [];
    const evaluatedSeeds: Array<number | null> = [];
    let baseSampled = 0;
    // Validation accuracy by trainer seed: 11 and 12 tie, 12 wins on the win rate.
    const figures: Record<number, { accuracyTuned: number; winRate: number }> = {
      10: { accuracyTuned: 0.55, winRate: 0.7 },
      11: { accuracyTuned: 0.7, winRate: 0.5 },
      12: { accuracyTuned: 0.7, winRate: 0.6 },
    };
    const several: RoundActivities = {
      ...activities,
      trainLora: async ({ root, dataset, seed }) => {
        trained.push({ seed, dataset });
        // Each training waits for all three to have started: they only finish if they run side by side.
        if (++started === 3) allStarted();
        await together;
        const at = trainingRoot(root, seed ?? null);
        return { manifest: `${at}/lora.json`, lora: `${at}/lora/`, steps: 1, finalLoss: 0.1 + (seed ?? 0) / 1000, ...(seed === undefined ? {} : { seed }) };
      },
      sampleValidationBase: async () => {
        baseSampled += 1;
        return { images: 2 };
      },
      validateLora: async ({ root, lora, seed }) => {
        validated.push(lora);
        return {
          manifest: `${root}/validation/seed-${seed}.json`,
          seed,
          lora,
          prompts: 1,
          pairs: 2,
          accuracyBase: 0.5,
          ...figures[seed]!,
          finalLoss: 0.1 + seed / 1000,
        };
      },
      evaluateRound: async (request) => {
        evaluated.push(request.lora);
        evaluatedSeeds.push(request.seeds?.kept ?? null);
        return activities.evaluateRound(request);
      },
    };
    const input = {
      ...campaignRoundInput,
      prompts: [1, 2, 3, 4, 5].map((n) => ({ className: 'circle', text: `${n} red circles` })),
      lora: { seeds: 3, seed: 10 },
    };
    const { result, progress, details: lines } = await standInRound(several, input, 'seeds');
    const details = lines.join('\n');

    expect(trained.map((t) => t.seed).sort()).toEqual([10, 11, 12]);
    expect(new Set(trained.map((t) => t.dataset))).toEqual(new Set([result.dataset.dataset]));
    const keys = [10, 11, 12].map((seed) => `${trainingRoot(result.root, seed)}/lora/`);
    expect(new Set(keys).size).toBe(3);
    expect([...validated].sort()).toEqual(keys);
    expect(baseSampled).toBe(1);
    expect(evaluated).toEqual([keys[2]]);
    // The evaluation is handed the LoRAs' figures, so evaluation.json keeps them.
    expect(evaluatedSeeds).toEqual([12]);
    expect(result.training).toMatchObject({ lora: keys[2], seed: 12 });
    const seeds = result.training.seeds!;
    expect(seeds.kept).toBe(12);
    expect(seeds.perSeed.map((s) => [s.seed, s.lora, s.accuracy, s.winRate, s.kept])).toEqual([
      [10, keys[0], 0.55, 0.7, false],
      [11, keys[1], 0.7, 0.5, false],
      [12, keys[2], 0.7, 0.6, true],
    ]);
    expect(seeds.perSeed.map((s) => s.finalLoss)).toEqual([0.11, 0.111, 0.112]);
    expect(seeds.accuracyGain.min).toBeCloseTo(0.05, 12);
    expect(seeds.accuracyGain.max).toBeCloseTo(0.2, 12);
    expect(seeds.accuracyGain.mean).toBeCloseTo(0.15, 12);
    expect(seeds.accuracyGain.sd).toBeCloseTo(Math.sqrt(0.0075), 12);
    expect(progress.loras).toEqual({ total: 3, trained: 3, validated: 3, kept: 12 });
    expect(details).toMatch(/^trained 3 of 3 LoRAs, 1 steps each$/m);
    expect(details).toMatch(
      /^validated 3 of 3 LoRAs on 1 withheld training prompts: accuracy seed 10 55\.0%, seed 11 70\.0%, seed 12 70\.0% \(base 50\.0%\)$/m,
    );
    expect(details).toMatch(/^kept the LoRA of trainer seed 12 of 3; validation accuracy gain \+5\.0 to \+20\.0 points/m);
  });
});

describe('several LoRAs that fail', () => {
  it(
    'a LoRA whose training fails for good stops the others and the base validation, and fails the round once they have stopped',
    { timeout: 60_000 },
    async () => {
      const stopped: number[] = [];
      const { activities } = standIns();
      const failing: RoundActivities = {
        ...activities,
        trainLora: async ({ seed }) => {
          if (seed === 1) {
            await new Promise((r) => setTimeout(r, 500));
            throw ApplicationFailure.nonRetryable('the trainer refused its input', 'BadTrainingInput');
          }
          return runUntilCancelled(1000, stopped);
        },
        sampleValidationBase: () => runUntilCancelled(0, stopped),
      };
      const input = {
        ...campaignRoundInput,
        prompts: [1, 2, 3].map((n) => ({ className: 'circle', text: `${n} red circles` })),
        lora: { seeds: 2 },
        activities: { heartbeatTimeoutSeconds: 15, maximumAttempts: 1 },
      };
      const { error, endedAt } = await withStandInWorkers(failing, async () => {
        const handle = await env.client.workflow.start('selfRewardRound', {
          taskQueue: TASK_QUEUES.workflows,
          workflowId: `seeds-${randomUUID()}`,
          args: [input],
        });
        const error = await handle.result().catch((e: unknown) => e);
        return { error, endedAt: Date.now() };
      });
      expect(error).toBeInstanceOf(WorkflowFailedError);
      const activityFailure = (error as WorkflowFailedError).cause;
      expect((activityFailure as ActivityFailure).cause).toMatchObject({ type: 'BadTrainingInput' });
      // The other LoRA's training and the base's validation sampling.
      expect(stopped).toHaveLength(2);
      expect(Math.max(...stopped)).toBeLessThanOrEqual(endedAt);
    },
  );
});

describe("a shard's judge on the GPU worker that sampled it", () => {
  /** Who sampled and who judged each shard, and on which queue the judge was taken. */
  interface Seen {
    readonly sampledBy: Map<number, string>;
    readonly judges: { readonly shard: number; readonly worker: string; readonly queue: string }[];
  }

  /**
   * A stand-in GPU worker as the plugin sets one up: one worker on the shared GPU queue and one
   * on a queue of its own, which its shards' results name. It has a connection of its own, as a
   * worker process has (one connection holds one worker per queue). With `gone`, its own queue's
   * worker stops once a shard is sampled and before the result is returned, and so does it then.
   */
  async function standInGpuWorker(name: string, activities: RoundActivities, seen: Seen, gone = false) {
    const queue = `${TASK_QUEUES.gpu}@${name}`;
    let stopOwn: () => void = () => undefined;
    const ownStopping = new Promise<void>((r) => (stopOwn = r));
    let ownRun: Promise<void> = Promise.resolve();
    const served: RoundActivities = {
      ...activities,
      sampleShard: async (request) => {
        // Long enough that another free worker takes the next shard.
        await new Promise((r) => setTimeout(r, 300));
        seen.sampledBy.set(request.shard, name);
        const sampled = await activities.sampleShard(request);
        if (gone) {
          stopOwn();
          await ownRun;
        }
        return { ...sampled, workerQueue: queue };
      },
      judgeShard: async (request) => {
        seen.judges.push({ shard: request.shard, worker: name, queue: Context.current().info.taskQueue });
        return activities.judgeShard(request);
      },
    };
    const connection = await NativeConnection.connect({ address: env.address });
    const [shared, own] = await Promise.all(
      [TASK_QUEUES.gpu, queue].map((taskQueue) =>
        Worker.create({ connection, taskQueue, activities: activitiesOf('gpu', served), maxConcurrentActivityTaskExecutions: 1 }),
      ),
    );
    return {
      queue,
      /** Serves until `until` settles; with `gone`, until its first shard is sampled. */
      run: async (until: Promise<unknown> = ownStopping): Promise<void> => {
        const stop = gone ? ownStopping : until.then(() => undefined);
        ownRun = own!.runUntil(stop);
        try {
          await shared!.runUntil(gone ? ownRun : stop);
        } finally {
          await ownRun.catch(() => undefined);
          await connection.close();
        }
      },
    };
  }

  async function workflowWorker(activities: RoundActivities): Promise<Worker> {
    bundle ??= await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH });
    return Worker.create({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUES.workflows,
      workflowBundle: bundle,
      activities: activitiesOf('cpu', activities),
    });
  }

  /** The queue each judgeShard task of the run was scheduled on, in order. */
  async function judgeQueues(handle: WorkflowHandle): Promise<string[]> {
    const { events } = await handle.fetchHistory();
    return (events ?? []).flatMap((e) => {
      const scheduled = e.activityTaskScheduledEventAttributes;
      return scheduled?.activityType?.name === 'judgeShard' ? [scheduled.taskQueue!.name!] : [];
    });
  }

  it('is taken by that worker from its own queue', { timeout: 60_000 }, async () => {
    const { activities } = standIns();
    const seen: Seen = { sampledBy: new Map(), judges: [] };
    const [a, b] = await Promise.all([standInGpuWorker('a', activities, seen), standInGpuWorker('b', activities, seen)]);
    const workflows = await workflowWorker(activities);
    const input = { ...campaignRoundInput, shards: 4, prompts: [1, 2, 3, 4].map((n) => ({ className: 'circle', text: `${n} red circles` })) };
    const { result, queues } = await workflows.runUntil(async () => {
      const workflowId = `judge-here-${randomUUID()}`;
      const handle = await env.client.workflow.start('selfRewardRound', { taskQueue: TASK_QUEUES.workflows, workflowId, args: [input] });
      const done = handle.result();
      await Promise.all([a.run(done), b.run(done)]);
      const result = (await done) as RoundResult;
      await recordHistory(env, workflowId);
      return { result, queues: await judgeQueues(handle) };
    });
    expect(result.judged.map((j) => j.shard)).toEqual([0, 1, 2, 3]);
    // Both workers sampled, and every shard was judged by the one that sampled it, from that worker's queue.
    expect(new Set(seen.sampledBy.values())).toEqual(new Set(['a', 'b']));
    const queueOf = { a: a.queue, b: b.queue } as Record<string, string>;
    expect(seen.judges.sort((x, y) => x.shard - y.shard)).toEqual(
      [0, 1, 2, 3].map((shard) => ({ shard, worker: seen.sampledBy.get(shard), queue: queueOf[seen.sampledBy.get(shard)!] })),
    );
    expect(queues.sort()).toEqual([0, 1, 2, 3].map((shard) => queueOf[seen.sampledBy.get(shard)!]).sort());
    expect(result.samples.map((s) => s.workerQueue).sort()).toEqual([...queues].sort());
  });

  it('goes to the shared GPU queue when that worker is gone, and the round completes', { timeout: 60_000 }, async () => {
    const { activities } = standIns();
    const seen: Seen = { sampledBy: new Map(), judges: [] };
    const a = await standInGpuWorker('gone', activities, seen, true);
    const b = await standInGpuWorker('other', activities, seen);
    const workflows = await workflowWorker(activities);
    const workflowId = `judge-elsewhere-${randomUUID()}`;
    const input = { ...campaignRoundInput, activities: { judgeScheduleToStartSeconds: 1 } };
    const { result, queues } = await workflows.runUntil(async () => {
      const handle = await env.client.workflow.start('selfRewardRound', { taskQueue: TASK_QUEUES.workflows, workflowId, args: [input] });
      // The only GPU worker samples the shard and is gone before its judge is scheduled; another starts then.
      await a.run();
      expect(seen.sampledBy.get(0)).toBe('gone');
      const done = handle.result();
      await b.run(done);
      const result = (await done) as RoundResult;
      await recordHistory(env, workflowId);
      return { result, queues: await judgeQueues(handle) };
    });
    expect(result.samples[0]!.workerQueue).toBe(a.queue);
    expect(queues).toEqual([a.queue, TASK_QUEUES.gpu]);
    expect(seen.judges).toEqual([{ shard: 0, worker: 'other', queue: TASK_QUEUES.gpu }]);
    expect(result.report.report).toContain('report.html');
  });
});

describe('a GPU worker set up by the plugin', () => {
  it.each(['gpu', 'all'] as const)('role %s also polls a GPU queue of its own', { timeout: 60_000 }, async (role) => {
    const scratch = await mkdtemp(join(tmpdir(), 'plugin-queue-'));
    const plugin = selfRewardPlugin({
      role,
      dependencies: dependenciesFromEnvironment({ SELF_REWARD_STORE: join(scratch, 'store'), SELF_REWARD_WORK_DIR: join(scratch, 'work') }),
    });
    const other = selfRewardPlugin({ role, dependencies: dependenciesFromEnvironment({ SELF_REWARD_STORE: join(scratch, 'store') }) });
    expect(plugin.workerQueue).toMatch(new RegExp(`^${TASK_QUEUES.gpu}@`));
    expect(other.workerQueue).not.toBe(plugin.workerQueue);
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: role === 'gpu' ? TASK_QUEUES.gpu : TASK_QUEUES.workflows,
      plugins: [plugin],
    });
    const pollers = await worker.runUntil(async () => {
      for (;;) {
        const { pollers } = await env.client.workflowService.describeTaskQueue({
          namespace: 'default',
          taskQueue: { name: plugin.workerQueue! },
          // TASK_QUEUE_TYPE_ACTIVITY of the API's TaskQueueType.
          taskQueueType: 2,
        });
        if ((pollers ?? []).length > 0) return pollers!;
        await new Promise((r) => setTimeout(r, 200));
      }
    });
    expect(pollers).toHaveLength(1);
  });
});
