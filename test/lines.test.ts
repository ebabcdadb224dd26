/**
 * Model lines and their nights on a real dev server, with the real line activities and store,
 * and the round's stages as stand-ins whose figures the test chooses (the orchestration is what
 * is under test here; test/nightly.test.ts runs nights on the real models). Schedules are made
 * through the command line, as users make them.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { createLineActivities } from '../activities/lines.js';
import { main } from '../cli/commands.js';
import { SelfRewardClient } from '../client/index.js';
import type { RoundInput } from '../config/round.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import type { Comparison, EvaluateRequest, RoundActivities } from '../contract/activities.js';
import { lineKeys } from '../contract/keys.js';
import {
  LINE_WORKFLOW_TYPE,
  lineWorkflowId,
  submitChallengerUpdate,
  type Challenger,
  type LineActivities,
  type LineEvent,
  type LineRecord,
} from '../contract/lines.js';
import { activitiesOf, TASK_QUEUES } from '../contract/workers.js';
import { LocalFolderStore } from '../store/local.js';
import { findJson } from '../store/store.js';
import { WORKFLOWS_PATH } from '../workers/plugin.js';
import { selfRewardLine } from '../workflows/index.js';
import { requireBinary, TEMPORAL_CLI } from './servers.js';
import { standInPreparation, standInValidation, storeOnlyDependencies } from './activity.js';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let store: LocalFolderStore;
let selfReward: SelfRewardClient;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: requireBinary(TEMPORAL_CLI) }, searchAttributes: Object.values(SEARCH_ATTRIBUTES) },
  });
  bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH });
  store = new LocalFolderStore(await mkdtemp(join(tmpdir(), 'lines-store-')));
  selfReward = new SelfRewardClient(env.client);
});

afterAll(async () => {
  await env?.teardown();
});

/** A held stage: the test sees it reached, and releases it when it chooses. */
class Gate {
  private released!: () => void;
  readonly release: Promise<void> = new Promise((resolve) => (this.released = resolve));
  reached = 0;
  open(): void {
    this.released();
  }
}

interface StandInRound {
  readonly activities: RoundActivities;
  /** The input of every round that sampled, in order. */
  readonly sampled: RoundInput[];
  readonly evaluated: EvaluateRequest[];
}

/**
 * A round's stages as stand-ins. `winRate(input)` is the tuned generator's win rate against its
 * parent (and the base); its interval is ±0.05 around it. With `hold`, training waits on it.
 */
function standInRound(winRate: (input: RoundInput) => number, hold?: Gate): StandInRound {
  const sampled: RoundInput[] = [];
  const evaluated: EvaluateRequest[] = [];
  const comparison = (w: number): Comparison => ({
    pairs: 40,
    winRate: w,
    winRateInterval: [w - 0.05, w + 0.05],
    meanClipBase: 25,
    meanClipTuned: 25 + (w - 0.5) * 10,
    signTestP: 0.01,
    accuracyBase: 0.5,
    accuracyTuned: 0.5 + (w - 0.5),
    accuracyGainInterval: [w - 0.55, w - 0.45],
    diversityBase: 0.3,
    diversityTuned: 0.3,
    diversityChange: 0,
    countAccuracyBase: null,
    countAccuracyTuned: null,
    countGainInterval: null,
    perClass: {},
    referee: null,
  });
  const { prepareRound, inputOf } = standInPreparation();
  const activities: RoundActivities = {
    prepareRound,
    sampleShard: async (request) => {
      const { root, shard } = request;
      const input = inputOf(request);
      if (shard === 0) sampled.push(input);
      return { shard, manifest: `${root}/samples/${shard}.json`, prompts: 1, images: 2, classes: ['circle'] };
    },
    judgeShard: async ({ root, shard }) => ({ shard, manifest: `${root}/scores/${shard}.json`, images: 2, detected: 1 }),
    joinTraining: async () => ({ rank: null, workers: null }),
    sampleReferences: async () => ({ images: 2 }),
    evaluateShard: async ({ shard }) => ({ shard, prompts: 1, images: 2 }),
    // The lines' rounds train one LoRA: they never validate.
    sampleValidationBase: async () => ({ images: 0 }),
    validateLora: standInValidation,
    curateDataset: async ({ root, include }) => ({
      manifest: `${root}/dataset.json`,
      dataset: `${root}/dataset/`,
      kept: 2,
      included: include.length,
      dropped: 0,
      perClass: {},
    }),
    trainLora: async ({ root }) => {
      if (hold !== undefined) {
        hold.reached += 1;
        await hold.release;
      }
      return { manifest: `${root}/lora.json`, lora: `${root}/lora/`, steps: 1, finalLoss: 0.1 };
    },
    evaluateRound: async (request) => {
      evaluated.push(request);
      const w = winRate(inputOf(request));
      return { manifest: `${request.root}/evaluation.json`, ...comparison(w), parent: request.parent === null ? null : comparison(w) };
    },
    writeReport: async ({ root }) => ({ report: `${root}/report.html`, location: `/reports/${root}` }),
  };
  return { activities, sampled, evaluated };
}

/** Workers with the workflows, the stand-in round and the real line activities (store, Temporal client). */
async function withWorkers<T>(round: RoundActivities, run: () => Promise<T>, lineOverrides: Partial<LineActivities> = {}): Promise<T> {
  const deps = storeOnlyDependencies(store);
  const all = { ...round, ...createLineActivities(deps), ...lineOverrides };
  const connection = env.nativeConnection;
  const cpu = await Worker.create({ connection, taskQueue: TASK_QUEUES.workflows, workflowBundle: bundle, activities: activitiesOf('cpu', all) });
  const gpu = await Worker.create({ connection, taskQueue: TASK_QUEUES.gpu, activities: activitiesOf('gpu', all) });
  return cpu.runUntil(gpu.runUntil(run));
}

function nightlyInput(line: string, lora: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    line,
    round: {
      generator: { base: '/models/generator' },
      judge: { detector: '/models/detector', clip: '/models/clip' },
      prompts: [{ className: 'circle', text: 'one red circle' }],
      samplesPerPrompt: 2,
      shards: 1,
      lora,
      evaluation: { prompts: [{ className: 'circle', text: 'two red circles' }] },
    },
  };
}

const storedLine = (name: string) => findJson<LineRecord>(store, lineKeys.current(name));
const storedEvent = (name: string, seq: number) => findJson<LineEvent>(store, lineKeys.event(name, seq));

async function until<T>(probe: () => Promise<T | null | undefined | false>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not seen in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('a model line', () => {
  it('has the workflow type the activities start it by', () => {
    expect(selfRewardLine.name).toBe(LINE_WORKFLOW_TYPE);
  });

  it('promotes a night whose challenger passes the gate; the next night samples from the new champion, trains on its data too and measures against it', async () => {
    const line = `promote-${randomUUID().slice(0, 8)}`;
    const round = standInRound(() => 0.7);
    const [first, second] = await withWorkers(round.activities, async () => {
      const first = await (await selfReward.startNightly(nightlyInput(line))).result();
      const second = await (await selfReward.startNightly(nightlyInput(line))).result();
      return [first, second];
    });
    expect(first.decision).toMatchObject({ kind: 'challenger', verdict: 'promoted', championBefore: 1, championAfter: 2 });
    expect(second.decision).toMatchObject({ verdict: 'promoted', championBefore: 2, championAfter: 3 });
    // Night 1 sampled from the base; night 2 from night 1's LoRA, with night 1's dataset and other seeds.
    expect(round.sampled.map((input) => [input.round, input.generator.tunedUnet])).toEqual([
      [1, null],
      [2, first.round.training.lora],
    ]);
    expect(round.sampled[1]!.includeDatasets).toEqual([first.round.dataset.dataset]);
    expect(round.sampled[1]!.sampling.seed).not.toBe(round.sampled[0]!.sampling.seed);
    expect(round.evaluated.map((e) => e.parent)).toEqual([null, first.round.training.lora]);
    // The store holds the champion, each version, and the history with the gate's reasons.
    expect(await storedLine(line)).toMatchObject({
      name: line,
      base: '/models/generator',
      champion: { version: 3, tunedUnet: second.round.training.lora },
      events: 3,
      nights: 2,
    });
    expect((await storedEvent(line, 2))?.reasons[0]).toMatch(/win rate against the base 70.0% \[65.0%, 75.0%\].*starts above 50.0%/);
    expect((await storedEvent(line, 3))?.reasons[0]).toMatch(/against the parent/);
  });

  it('rejects a night whose challenger is worse, leaving the champion as it was, and says why', async () => {
    const line = `reject-${randomUUID().slice(0, 8)}`;
    // Night 1 is good; night 2's challenger loses to the champion.
    const round = standInRound((input) => (input.round === 1 ? 0.7 : 0.3));
    const second = await withWorkers(round.activities, async () => {
      await (await selfReward.startNightly(nightlyInput(line))).result();
      return (await selfReward.startNightly(nightlyInput(line))).result();
    });
    expect(second.decision).toMatchObject({ verdict: 'rejected', championBefore: 2, championAfter: 2 });
    expect(second.decision.reasons.join(' ')).toMatch(/win rate against the parent 30.0% \[25.0%, 35.0%\].*does not start above 50.0%/);
    expect(second.decision.reasons.join(' ')).toMatch(/detector accuracy 30.0% against the parent's 50.0%: a drop of 20.0%/);
    const stored = await storedLine(line);
    expect(stored?.champion.version).toBe(2);
    expect(stored?.champion.tunedUnet).toBe(round.sampled[1]!.generator.tunedUnet);
    expect(await storedEvent(line, 3)).toMatchObject({ verdict: 'rejected', challenger: { night: expect.stringContaining('night-') as unknown } });
    const memo = (await env.client.workflow.getHandle(`${second.decision.by}`).describe()).memo;
    expect(memo).toMatchObject({ verdict: 'rejected', championAfter: 2 });
  });

  it('lets only one of two racing nights promote: the other finds its champion stale', async () => {
    const line = `race-${randomUUID().slice(0, 8)}`;
    const hold = new Gate();
    const round = standInRound(() => 0.8, hold);
    const [a, b] = await withWorkers(round.activities, async () => {
      const nights = await Promise.all([selfReward.startNightly(nightlyInput(line)), selfReward.startNightly(nightlyInput(line))]);
      // Both have opened the line against champion 1 and are training before either finishes.
      await until(async () => hold.reached === 2, 'both nights training');
      hold.open();
      return Promise.all(nights.map((n) => n.result()));
    });
    const verdicts = [a.decision, b.decision].map((d) => d.verdict).sort();
    expect(verdicts).toEqual(['promoted', 'rejected']);
    const rejected = [a.decision, b.decision].find((d) => d.verdict === 'rejected')!;
    expect(rejected.reasons.at(-1)).toBe('stale: the champion moved from version 1 to 2 while this night ran');
    expect((await storedLine(line))?.champion.version).toBe(2);
  });

  it('takes changes that wait together one at a time: of two challengers against the same champion, one is promoted, the other is stale', async () => {
    const name = `queue-${randomUUID().slice(0, 8)}`;
    const lineActivities = createLineActivities(storeOnlyDependencies(store));
    const recording = new Gate();
    // The first change's record waits, so that the next two queue up behind it and are woken together.
    const recordLineEvent: LineActivities['recordLineEvent'] = async (request) => {
      recording.reached += 1;
      if (recording.reached === 1) await recording.release;
      return lineActivities.recordLineEvent(request);
    };
    const better: Comparison = {
      pairs: 40,
      winRate: 0.7,
      winRateInterval: [0.6, 0.8],
      meanClipBase: 25,
      meanClipTuned: 27,
      signTestP: 0.01,
      accuracyBase: 0.5,
      accuracyTuned: 0.7,
      accuracyGainInterval: [0.1, 0.3],
      diversityBase: 0.3,
      diversityTuned: 0.29,
      diversityChange: 0.29 / 0.3 - 1,
      countAccuracyBase: null,
      countAccuracyTuned: null,
      countGainInterval: null,
      perClass: {},
      referee: null,
    };
    const challenger = (night: string): Challenger => ({
      night,
      round: `runs/${night}/round-001`,
      lora: `runs/${night}/round-001/lora/`,
      dataset: `runs/${night}/round-001/dataset/`,
      againstChampion: better,
      againstBase: better,
      gate: { passed: true, reasons: ['passed'] },
    });
    const verdicts = await withWorkers(
      standInRound(() => 0.5).activities,
      async () => {
        const line = await selfReward.createLine({ name, base: '/models/generator' });
        const handle = env.client.workflow.getHandle(lineWorkflowId(name));
        const submit = (night: string, againstVersion: number) =>
          handle.executeUpdate(submitChallengerUpdate, { args: [{ challenger: challenger(night), againstVersion }] });
        const first = submit('night-1', 1);
        await until(async () => recording.reached === 1, 'the first change recording');
        const later = [submit('night-2', 2), submit('night-3', 2)];
        // Both are waiting on the line before the first change ends.
        await new Promise((r) => setTimeout(r, 1000));
        recording.open();
        const events = await Promise.all([first, ...later]);
        expect((await line.state()).champion.version).toBe(3);
        return events.map((e) => [e.by, e.verdict]);
      },
      { recordLineEvent },
    );
    expect(verdicts[0]).toEqual(['night-1', 'promoted']);
    expect(
      verdicts
        .slice(1)
        .map((v) => v[1])
        .sort(),
    ).toEqual(['promoted', 'rejected']);
  });

  it('rolls back to an earlier champion exactly, promotes a recorded challenger by hand, and refuses what does not exist', async () => {
    const line = `rollback-${randomUUID().slice(0, 8)}`;
    const round = standInRound((input) => (input.round === 3 ? 0.2 : 0.7));
    const io = { error: vi.spyOn(console, 'error').mockImplementation(() => undefined), log: vi.spyOn(console, 'log').mockImplementation(() => undefined) };
    vi.stubEnv('TEMPORAL_ADDRESS', env.address);
    try {
      await withWorkers(round.activities, async () => {
        const first = await (await selfReward.startNightly(nightlyInput(line))).result(); // v2
        await (await selfReward.startNightly(nightlyInput(line))).result(); // v3
        // Through the command line, as an operator would.
        expect(await main(['line', 'rollback', line, '--version', '2', '--reason', 'night 2 drew squares as circles', '--by', 'alice'])).toBe(0);
        const state = await selfReward.line(line).state();
        expect(state.champion).toMatchObject({ version: 4, tunedUnet: first.round.training.lora, dataset: first.round.dataset.dataset });
        expect(state.recent.at(-1)).toMatchObject({
          kind: 'rollback',
          by: 'alice',
          reasons: ['night 2 drew squares as circles'],
          championBefore: 3,
          championAfter: 4,
        });

        // The next night samples from the restored UNet; its worse challenger is rejected, then promoted by hand.
        const third = await (await selfReward.startNightly(nightlyInput(line))).result();
        expect(round.sampled.at(-1)?.generator.tunedUnet).toBe(first.round.training.lora);
        expect(third.decision).toMatchObject({ verdict: 'rejected', championAfter: 4 });
        expect(await main(['line', 'promote', line, '--event', String(third.decision.seq), '--reason', 'a person preferred it', '--by', 'bob'])).toBe(0);
        expect((await selfReward.line(line).state()).champion).toMatchObject({ version: 5, tunedUnet: third.round.training.lora });

        expect(await main(['line', 'rollback', line, '--version', '9', '--reason', 'typo'])).toBe(2);
        expect(await main(['line', 'promote', line, '--event', '1', '--reason', 'the creation event'])).toBe(2);
        expect(await main(['line', 'show', line])).toBe(0);
      });
      const errors = io.error.mock.calls.map((c) => c.join(' ')).join('\n');
      expect(errors).toContain(`line "${line}" has no champion version 9 to restore (versions 1 to 4)`);
      expect(errors).toContain(`line "${line}" has no challenger at history event 1`);
      expect(io.log.mock.calls.map((c) => c.join(' ')).join('\n')).toContain(`champion: version 5`);
    } finally {
      io.error.mockRestore();
      io.log.mockRestore();
      vi.unstubAllEnvs();
    }
    expect((await storedLine(line))?.events).toBe(6);
  });

  it('keeps one base generator: a night naming another base fails at once, naming both', async () => {
    const line = `base-${randomUUID().slice(0, 8)}`;
    const round = standInRound(() => 0.7);
    const error = await withWorkers(round.activities, async () => {
      await (await selfReward.startNightly(nightlyInput(line))).result();
      const other = { ...nightlyInput(line), round: { ...(nightlyInput(line)['round'] as object), generator: { base: '/models/another' } } };
      return (await selfReward.startNightly(other)).result().catch((e: unknown) => e);
    });
    expect(String(((error as Error).cause as Error | undefined)?.cause)).toContain(
      `line "${line}" improves /models/generator; this night names /models/another`,
    );
  });
});

describe('nightly schedules, made through the command line', () => {
  it('fire on their interval and when triggered, skip a firing while a night still runs, and pause, unpause and delete', async () => {
    const line = `scheduled-${randomUUID().slice(0, 8)}`;
    const hold = new Gate();
    const round = standInRound(() => 0.7, hold);
    const io = { error: vi.spyOn(console, 'error').mockImplementation(() => undefined), log: vi.spyOn(console, 'log').mockImplementation(() => undefined) };
    vi.stubEnv('TEMPORAL_ADDRESS', env.address);
    const { writeFile } = await import('node:fs/promises');
    const file = join(await mkdtemp(join(tmpdir(), 'nightly-')), 'nightly.json');
    await writeFile(file, JSON.stringify(nightlyInput(line)));
    const id = `line-${line}-nightly`;
    try {
      await withWorkers(round.activities, async () => {
        expect(await main(['schedule', 'create', file, '--every', '4s', '--note', 'test line'])).toBe(0);
        const schedule = selfReward.schedule(id);
        // The first firing starts a night, which holds in training; firings meanwhile are skipped.
        await until(async () => hold.reached === 1, 'the first scheduled night training', 30_000);
        await until(async () => (await schedule.describe()).info.numActionsSkippedOverlap >= 1, 'a firing skipped while the night runs', 30_000);
        expect((await schedule.describe()).info.runningActions).toHaveLength(1);

        expect(await main(['schedule', 'pause', id, '--note', 'holding'])).toBe(0);
        expect((await schedule.describe()).state.paused).toBe(true);
        hold.open();
        await until(async () => (await storedLine(line))?.champion.version === 2, 'the first night promoted');
        expect(await main(['schedule', 'unpause', id])).toBe(0);
        expect(await main(['schedule', 'trigger', id])).toBe(0);
        // The next night samples from the champion the first one left.
        await until(async () => ((await storedLine(line))?.champion.version ?? 0) >= 3, 'a second night promoted', 30_000);
        expect(round.sampled[1]?.generator.tunedUnet).toBe((await storedEvent(line, 2))?.challenger?.lora);
        expect(round.evaluated[1]?.parent).toBe((await storedEvent(line, 2))?.challenger?.lora);

        expect(await main(['schedule', 'list'])).toBe(0);
        expect(await main(['schedule', 'describe', id])).toBe(0);
        expect(await main(['schedule', 'pause', id])).toBe(0);
        // A paused schedule's running nights finish; then it is deleted.
        await until(async () => (await schedule.describe()).info.runningActions.length === 0, 'no night running', 30_000);
        expect(await main(['schedule', 'delete', id])).toBe(0);
        expect(await main(['schedule', 'describe', id])).toBe(2);
      });
      const out = io.log.mock.calls.map((c) => c.join(' ')).join('\n');
      expect(out).toContain(`created schedule ${id} for line ${line}`);
      expect(out).toMatch(new RegExp(`${id}  line ${line}  active`));
      expect(out).toContain('when: every 4s; overlap skip');
      expect(io.error.mock.calls.map((c) => c.join(' ')).join('\n')).toContain(id);
    } finally {
      io.error.mockRestore();
      io.log.mockRestore();
      vi.unstubAllEnvs();
    }
  });

  it('backfills the nights of a past window, one after another', async () => {
    const line = `backfill-${randomUUID().slice(0, 8)}`;
    const round = standInRound(() => 0.7);
    const io = { log: vi.spyOn(console, 'log').mockImplementation(() => undefined) };
    vi.stubEnv('TEMPORAL_ADDRESS', env.address);
    const schedule = await selfReward.createNightlySchedule(nightlyInput(line), { every: '1h', scheduleId: `backfill-${line}` });
    try {
      await withWorkers(round.activities, async () => {
        // Three hourly firings lay in the last three hours.
        const end = new Date();
        const start = new Date(end.getTime() - 3 * 3600_000 + 60_000);
        expect(await main(['schedule', 'backfill', schedule.scheduleId, '--start', start.toISOString(), '--end', end.toISOString()])).toBe(0);
        await until(async () => ((await storedLine(line))?.nights ?? 0) >= 3, 'three backfilled nights', 60_000);
        // The line is stored before the third night hears back from it: the workers stay until that night has ended.
        await until(async () => (await schedule.describe()).info.runningActions.length === 0, 'no night running', 60_000);
      });
      expect((await storedLine(line))?.champion.version).toBe(4);
    } finally {
      io.log.mockRestore();
      vi.unstubAllEnvs();
      await schedule.delete();
    }
  });

  it('refuses a schedule without a time spec, and a bad one, before contacting Temporal', async () => {
    const io = { error: vi.spyOn(console, 'error').mockImplementation(() => undefined) };
    vi.stubEnv('TEMPORAL_ADDRESS', env.address);
    try {
      expect(await main(['schedule', 'create', '--preset', 'shapes', '--line', 'shapes'])).toBe(2);
      expect(await main(['schedule', 'create', '--preset', 'shapes', '--line', 'shapes', '--every', 'often'])).toBe(2);
      expect(await main(['schedule', 'create', '--preset', 'shapes', '--line', 'Shapes!', '--every', '1d'])).toBe(2);
      const errors = io.error.mock.calls.map((c) => c.join(' ')).join('\n');
      expect(errors).toContain('give either --cron');
      expect(errors).toContain('--every: expected a duration such as 30s');
      expect(errors).toContain('line: expected a line name');
    } finally {
      io.error.mockRestore();
      vi.unstubAllEnvs();
    }
  });
});
