/**
 * What an operator sees of a real round: a worker process (the entry point, with the shapes
 * pack's models and the real trainer) serving Prometheus metrics and writing JSON log lines. The
 * counters are read against the round's own manifests, the labels against the metrics table, the
 * log lines against the documented fields.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startTemporal, type RunningServer } from '../cli/servers.js';
import { SelfRewardClient } from '../client/index.js';
import type { RoundProgress } from '../contract/progress.js';
import type { SampleManifest } from '../contract/records.js';
import type { RoundResult } from '../contract/workflows.js';
import { testGenerator } from '../models/testing/python.js';
import { LOG_FIELDS } from '../observability/logs.js';
import { METRICS, SDK_METRICS, type MetricSpec } from '../observability/metrics.js';
import { LocalFolderStore } from '../store/local.js';
import { getJson } from '../store/store.js';
import { refereedEvaluation, testDetector, tinyRoundInput } from './models.js';
import { freePort } from './servers.js';
import { until, WorkerProcess } from './workerProcess.js';

/** One scraped sample: metric name, labels, value. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The Prometheus text format, as far as these metrics use it (no escaped quotes in label values). */
function parseScrape(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (match === null) throw new Error(`not a sample line: ${line}`);
      const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      return { name: match[1]!, labels, value: Number(match[3]) };
    });
}

const total = (samples: readonly Sample[], name: string, where: Readonly<Record<string, string>> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);

let scratch: string;
let temporal: RunningServer;
let worker: WorkerProcess;
let store: LocalFolderStore;
let metricsPort: number;
let result: RoundResult;
let workflowId: string;
/** What the client's `progress()` answered while the round ran, polled every 100 ms. */
const watched: RoundProgress[] = [];
let history: NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'observability-'));
  const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
  const port = await freePort();
  metricsPort = await freePort();
  temporal = await startTemporal({ stateDir: join(scratch, 'temporal'), port, uiPort: null });
  store = new LocalFolderStore(join(scratch, 'store'));
  worker = await WorkerProcess.start(join(scratch, 'work'), {
    TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
    SELF_REWARD_STORE: store.root,
    SELF_REWARD_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
    SELF_REWARD_LOG_FORMAT: 'json',
  });
  const client = new SelfRewardClient(new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) }));
  workflowId = `observed-${randomUUID()}`;
  // Training long enough (seconds) for its heartbeats, sent at most every 5 s, to show steps.
  const tiny = tinyRoundInput(generator, detector, { sampling: { steps: 3 }, lora: { maxSteps: 400, batchSize: 2 } });
  const input = { ...tiny, evaluation: refereedEvaluation(tiny) };
  const round = await client.startRound(input, { workflowId });
  result = await round.result({ onProgress: (p) => watched.push(p), intervalMs: 100 });
  history = (await round.workflow.fetchHistory()).events ?? [];
});

afterAll(async () => {
  await worker?.stop();
  await temporal?.stop();
});

describe("a worker's metrics endpoint after a round", () => {
  let samples: Sample[];
  beforeAll(async () => {
    samples = parseScrape(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
  });

  it("counts what the round's manifests hold: images sampled, judged and kept by class, trainer steps, attempts", async () => {
    const manifests = await Promise.all(result.samples.map((s) => getJson<SampleManifest>(store, s.manifest)));
    const sampledByClass = new Map<string, number>();
    for (const manifest of manifests) {
      for (const image of manifest.images) {
        const className = manifest.prompts.find((p) => p.promptIndex === image.promptIndex)!.className;
        sampledByClass.set(className, (sampledByClass.get(className) ?? 0) + 1);
      }
    }
    expect(sampledByClass.size).toBeGreaterThan(1);
    for (const [className, images] of sampledByClass) {
      expect(total(samples, METRICS.imagesSampled.name, { class: className }), className).toBe(images);
      expect(total(samples, METRICS.imagesJudged.name, { class: className }), className).toBe(images);
    }
    expect(total(samples, METRICS.imagesDetected.name)).toBe(result.judged.reduce((n, j) => n + j.detected, 0));
    for (const [className, counts] of Object.entries(result.dataset.perClass)) {
      expect(total(samples, METRICS.imagesKept.name, { class: className }), className).toBe(counts.kept);
    }
    expect(total(samples, METRICS.trainerSteps.name)).toBe(result.training.steps);
    expect(total(samples, `${METRICS.trainerStepSeconds.name}_count`)).toBe(result.training.steps);
    expect(total(samples, METRICS.trainerLoss.name)).toBeGreaterThan(0);
    expect(total(samples, METRICS.evaluationWinRate.name)).toBeCloseTo(result.evaluation.winRate, 9);
    expect(total(samples, METRICS.evaluationAccuracy.name, { side: 'tuned' })).toBeCloseTo(result.evaluation.accuracyTuned, 9);
    const referee = result.evaluation.referee!;
    expect(total(samples, METRICS.evaluationReferee.name, { check: 'objectPresent', side: 'tuned' })).toBeCloseTo(referee.objectPresent.tuned, 9);
    expect(total(samples, METRICS.evaluationReferee.name, { check: 'counting', side: 'base' })).toBeCloseTo(referee.counting!.base, 9);
    expect(total(samples, METRICS.evaluationReferee.name, { check: 'judgeAccepted' })).toBe(0);
    expect(total(samples, METRICS.evaluationFlaggedClasses.name)).toBe(referee.flaggedClasses.length);
    for (const activity of ['prepareRound', 'curateDataset', 'trainLora', 'sampleReferences', 'evaluateShard', 'evaluateRound', 'writeReport']) {
      expect(total(samples, METRICS.activityAttempts.name, { activity }), activity).toBe(1);
    }
    expect(total(samples, METRICS.activityAttempts.name, { activity: 'sampleShard' })).toBe(result.samples.length);
    expect(total(samples, METRICS.activityFailures.name)).toBe(0);
    expect(total(samples, `${METRICS.imageSeconds.name}_count`, { stage: 'sample' })).toBe(sampledByClass.size);
    // The worker judged the shards it sampled, from its cache (a judge that waited past
    // judgeScheduleToStartSeconds would read the store instead); every judged image read once.
    const judged = total(samples, METRICS.imagesJudged.name);
    expect(total(samples, METRICS.judgeImageReads.name, { source: 'cache' })).toBeGreaterThan(0);
    expect(total(samples, METRICS.judgeImageReads.name)).toBe(judged);
    expect(total(samples, METRICS.storeBytes.name, { op: 'put' })).toBeGreaterThan(total(samples, METRICS.storeBytes.name, { op: 'get' }) / 100);
  });

  it('labels each series with its documented labels and the worker’s own, nothing else', () => {
    const specs = Object.values(METRICS as Readonly<Record<string, MetricSpec>>);
    const ours = samples.filter((s) => s.name.startsWith('selfreward_'));
    expect(ours.length).toBeGreaterThan(20);
    for (const sample of ours) {
      const spec = specs.find((s) => sample.name === s.name || sample.name.replace(/_(bucket|sum|count)$/, '') === s.name);
      expect(spec, sample.name).toBeDefined();
      const allowed = new Set([...spec!.labels, 'role', 'device', 'service_name', ...(sample.name.endsWith('_bucket') ? ['le'] : [])]);
      for (const label of Object.keys(sample.labels)) expect(allowed.has(label), `${sample.name} label ${label}`).toBe(true);
      expect(sample.labels).toMatchObject({ role: 'all', device: 'cpu' });
    }
  });

  it("exports the SDK's metrics the deployment's dashboard reads, under the names it reads", () => {
    const names = new Set(samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
    // Counters of failures exist once something failed; the rest after any round.
    const afterAnyRound = Object.values(SDK_METRICS).filter((name) => !name.includes('failed'));
    for (const name of afterAnyRound) expect(names.has(name), name).toBe(true);
  });
});

describe("a round's progress", () => {
  it("shows the trainer's steps as they happen, from its heartbeats: no event in the round's history", () => {
    const training = watched.filter((p) => p.stage === 'train' && p.trainer !== null);
    expect(
      training.some((p) => p.trainer!.step > 0 && p.trainer!.step < 400),
      JSON.stringify(training.map((p) => p.trainer)),
    ).toBe(true);
    expect(history.filter((e) => e.workflowExecutionSignaledEventAttributes)).toEqual([]);
    // Every event is accounted for: three per activity (scheduled, started, completed); three per
    // workflow task, of which there is at most one per activity that ends and one to start; and
    // the workflow's own few (started, completed, search attributes, memo, the patches' markers).
    // Activities: prepare, 2 × (sample, judge), curate, train, references, 1 evaluation shard, evaluate, report.
    const activities = history.filter((e) => e.activityTaskScheduledEventAttributes).length;
    expect(activities).toBe(11);
    const ofActivities = history.filter(
      (e) => e.activityTaskScheduledEventAttributes || e.activityTaskStartedEventAttributes || e.activityTaskCompletedEventAttributes,
    );
    expect(ofActivities).toHaveLength(activities * 3);
    const workflowTasks = history.filter((e) => e.workflowTaskScheduledEventAttributes).length;
    expect(workflowTasks).toBeLessThanOrEqual(activities + 1);
    expect(history.length - ofActivities.length - 3 * workflowTasks).toBeLessThan(12);
  });
});

describe("a worker's JSON log of a round", () => {
  it('says of every activity line which workflow, run, attempt, round, stage and shard it is about', async () => {
    // The round's last line reaches the file shortly after the round ends.
    await until(async () => (await readFile(worker.logFile, 'utf8')).includes('writeReport done in'), 30_000, 'the report line in the log');
    const lines = (await readFile(worker.logFile, 'utf8'))
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const ofRound = lines.filter((line) => line['workflowId'] === workflowId && line['activityType'] !== undefined);
    const done = ofRound.filter((line) => / done in /.test(String(line['message'])));
    expect(done.map((line) => line['activityType']).sort()).toEqual(
      [
        'curateDataset',
        'evaluateRound',
        'evaluateShard',
        'judgeShard',
        'judgeShard',
        'prepareRound',
        'sampleReferences',
        'sampleShard',
        'sampleShard',
        'trainLora',
        'writeReport',
      ].sort(),
    );
    for (const line of ofRound) {
      expect(line).toMatchObject({ workflowRunId: expect.any(String), attempt: 1, round: 1, stage: expect.any(String), level: expect.any(String) });
      expect(
        Object.keys(line).every(
          (key) =>
            key in LOG_FIELDS ||
            ['time', 'level', 'message', 'namespace', 'taskQueue', 'activityId', 'isLocal', 'sdkComponent', 'source', 'failure', 'taskToken'].includes(key),
        ),
        JSON.stringify(Object.keys(line)),
      ).toBe(true);
    }
    expect(done.filter((line) => line['activityType'] === 'sampleShard').map((line) => line['shard'])).toEqual(expect.arrayContaining([0, 1]));
    // The trainer's own lines, relayed, carry the same fields.
    const trainer = ofRound.filter((line) => line['source'] === 'trainer');
    expect(trainer.length).toBeGreaterThan(2);
    for (const line of trainer) expect(line).toMatchObject({ stage: 'train', round: 1, activityType: 'trainLora' });
  });
});
