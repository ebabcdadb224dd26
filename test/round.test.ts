/**
 * A whole round through real workers (the entry points' options), real activities and models
 * (the shapes pack's, or untrained stand-ins of its architectures), the real trainer, and a real
 * local Temporal dev server. Tiny sizes keep it to about a minute on two cores.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { readdir, readFile } from 'node:fs/promises';

import { CancelledFailure, WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ActivityDependencies } from '../activities/dependencies.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { readText } from '../models/png.js';
import { testGenerator } from '../models/testing/python.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createEvaluateRound } from '../activities/evaluate.js';
import { runActivity } from './activity.js';
import { getJson } from '../store/store.js';
import { localTemporal, recordHistory, testDependencies, withRoundWorkers } from './stack.js';
import { refereedEvaluation, testDetector, tinyRoundInput } from './models.js';
import { chooseImages } from '../activities/selection.js';
import { artifactKeys, roundRoot, trainingRoot, validationSeed } from '../contract/keys.js';
import { validationSplit } from '../contract/seeds.js';
import type { EvaluateResult } from '../contract/activities.js';
import type { EvaluationRecord, PromptScores, RefereeScore, SampleManifest } from '../contract/records.js';
import { TASK_QUEUES } from '../contract/workers.js';
import type { CampaignResult, RoundFigures, RoundResult } from '../contract/workflows.js';
import type { RoundProgress } from '../contract/progress.js';

let env: TestWorkflowEnvironment;
let deps: ActivityDependencies;
let roundInput: Record<string, unknown>;
/** The tiny round's evaluation graded by a referee, with the pack grammar's colours and backgrounds. */
let refereed: Record<string, unknown>;

beforeAll(async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'round-'));
  const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
  env = await localTemporal();
  deps = testDependencies(scratch);
  roundInput = tinyRoundInput(generator, detector, { sampling: { steps: 2 }, lora: { maxSteps: 2, batchSize: 2, checkpointEvery: 1 } });
  refereed = refereedEvaluation(roundInput);
});

afterAll(async () => {
  await deps?.runtime.release();
  await env?.teardown();
});

const withWorkers = <T>(run: () => Promise<T>): Promise<T> => withRoundWorkers(env, deps, run);

describe('selfRewardRound', () => {
  it('trains two LoRAs with their own seeds (`lora.seeds`), validates them on a withheld training prompt and evaluates the kept one', async () => {
    const workflowId = `seeds-${randomUUID()}`;
    const input = { ...roundInput, lora: { ...(roundInput['lora'] as object), seeds: 2 } };
    const result = await withWorkers(
      async () => (await env.client.workflow.execute('selfRewardRound', { taskQueue: TASK_QUEUES.workflows, workflowId, args: [input] })) as RoundResult,
    );

    // One of the three training prompts (0.2 of them, rounded, at least one) is withheld: it is not sampled, nor in the dataset.
    const [withheld] = validationSplit(3, 0.2, 700_000) as [number];
    const withheldText = (roundInput['prompts'] as { text: string }[])[withheld]!.text;
    expect(result.dataset.withheld).toEqual({ prompts: 1, images: 0 });
    expect(result.samples.reduce((n, s) => n + s.images, 0)).toBe(2 * 2);
    for (const s of result.samples) {
      const manifest = await getJson<SampleManifest>(deps.store, s.manifest);
      expect(manifest.prompts.map((p) => p.promptIndex)).not.toContain(withheld);
    }
    const rows = (await deps.store.get(artifactKeys.datasetMetadata(result.root))).toString().trim().split('\n');
    expect(rows).toHaveLength(result.dataset.kept);
    expect(rows.map((r) => (JSON.parse(r) as { text: string }).text)).not.toContain(withheldText);

    const seeds = result.training.seeds!;
    const loras = [0, 1].map((seed) => `${trainingRoot(result.root, seed)}/lora/`);
    expect(seeds.perSeed.map((s) => [s.seed, s.lora])).toEqual([
      [0, loras[0]],
      [1, loras[1]],
    ]);
    for (const lora of loras) expect(await deps.store.list(`${lora}unet/`)).toContain(`${lora}unet/model.onnx`);
    for (const s of seeds.perSeed) {
      expect(typeof s.finalLoss).toBe('number');
      const record = await getJson<EvaluationRecord>(deps.store, artifactKeys.validationRecord(result.root, s.seed, withheld));
      expect(record.seeds).toEqual([0, 1].map((i) => validationSeed(700_000, withheld, i)));
      expect(record.base.map((b) => b.key)).toEqual([0, 1].map((i) => artifactKeys.validationImage(result.root, 'base', withheld, i)));
      expect(s.accuracyGain).toBeCloseTo(s.accuracy - s.accuracyBase, 12);
    }
    const kept = seeds.perSeed.find((s) => s.kept)!;
    expect(kept.seed).toBe(seeds.kept);
    expect(result.training.lora).toBe(kept.lora);
    // Only the kept LoRA is evaluated: the held-out tuned images name it.
    const tuned = readText(await deps.store.get(artifactKeys.evaluationImage(result.root, 'tuned', 0, 0)));
    expect(tuned['generator']).toContain(kept.lora);
    expect(result.evaluation.pairs).toBe(2);
    // evaluation.json keeps the LoRAs' figures beside the kept one's.
    expect((await getJson<EvaluateResult>(deps.store, result.evaluation.manifest)).seeds).toEqual(seeds);
    const report = (await deps.store.get(result.report.report)).toString();
    expect(report).toContain('LoRAs by trainer seed');
    expect(report).toContain('Validation accuracy gain across the seeds');
  }, 240_000);

  it('runs sample, judge, curate, train, evaluate and report, and shows its figures', async () => {
    const workflowId = `round-${randomUUID()}`;
    const { result, progress, description } = await withWorkers(async () => {
      // A gate with a diversity bound and the referee's rules: the verdict is only reported, the figures it reads are checked below.
      // A referee grades the evaluation.
      const gated = { ...roundInput, evaluation: refereed, gate: { minWinRateLow: 0, maxDiversityLoss: 0.5, maxRefereeDrop: 1, refuseHacking: true } };
      const handle = await env.client.workflow.start('selfRewardRound', { taskQueue: TASK_QUEUES.workflows, workflowId, args: [gated] });
      const result = (await handle.result()) as RoundResult;
      await recordHistory(env, workflowId);
      return { result, progress: await handle.query<RoundProgress>('progress'), description: await handle.describe() };
    });

    expect(result.samples.map((s) => s.images)).toEqual([4, 2]);
    expect(result.judged.map((j) => j.images)).toEqual([4, 2]);
    // Each shard was judged on the GPU worker that sampled it, from its own queue, and its images left that worker's cache once judged.
    const [workerQueue] = new Set(result.samples.map((s) => s.workerQueue));
    expect(workerQueue).toMatch(new RegExp(`^${TASK_QUEUES.gpu}@`));
    const { events } = await env.client.workflow.getHandle(workflowId).fetchHistory();
    const judges = (events ?? []).flatMap((e) =>
      e.activityTaskScheduledEventAttributes?.activityType?.name === 'judgeShard' ? [e.activityTaskScheduledEventAttributes] : [],
    );
    expect(judges.map((j) => j.taskQueue?.name)).toEqual([workerQueue, workerQueue]);
    expect((events ?? []).filter((e) => e.activityTaskTimedOutEventAttributes)).toEqual([]);
    expect(await readdir(deps.sampleCache!.folder)).toEqual([]);
    expect(result.dataset.kept + result.dataset.dropped).toBe(3);
    expect(result.training.steps).toBe(2);
    expect(result.evaluation.pairs).toBe(2);
    expect(result.evaluation.winRateInterval[0]).toBeLessThanOrEqual(result.evaluation.winRate);
    // The new figures, in the stored evaluation.json as in the result: one prompt, two seeds.
    const stored = await getJson<EvaluateResult>(deps.store, result.evaluation.manifest);
    expect(stored).toEqual(result.evaluation);
    const gain = stored.accuracyTuned - stored.accuracyBase;
    expect(stored.accuracyGainInterval).toEqual([expect.closeTo(gain, 12), expect.closeTo(gain, 12)]);
    for (const figure of [stored.diversityBase, stored.diversityTuned, stored.diversityChange]) expect(typeof figure).toBe('number');
    expect(stored.diversityBase).toBeGreaterThan(0);
    expect(stored.diversityChange).toBeCloseTo(stored.diversityTuned! / stored.diversityBase! - 1, 12);
    const record = await getJson<EvaluationRecord>(deps.store, artifactKeys.evaluationRecord(result.root, 0));
    expect(record.diversity).toMatchObject({ base: stored.diversityBase, parent: null, tuned: stored.diversityTuned });
    // Counting: the held-out prompt states two circles; the record keeps that and each image's instance count.
    expect(record.statedCount).toBe(2);
    for (const side of [record.base, record.tuned]) for (const score of side) expect(Number.isInteger(score.instances)).toBe(true);
    const hits = (side: EvaluationRecord['base']) => side.filter((s) => s.instances === 2).length / side.length;
    expect(stored.countAccuracyBase).toBe(hits(record.base));
    expect(stored.countAccuracyTuned).toBe(hits(record.tuned));
    const countGain = stored.countAccuracyTuned! - stored.countAccuracyBase!;
    expect(stored.countGainInterval).toEqual([expect.closeTo(countGain, 12), expect.closeTo(countGain, 12)]);
    // The referee's verdicts: the prompt asks for two yellow circles on a white background, so every check applies.
    expect(record.referee).toMatchObject({ colour: 'yellow', background: 'white', parent: null });
    for (const side of [record.referee!.base, record.referee!.tuned]) {
      expect(side).toHaveLength(2);
      for (const v of side) {
        // The judge's threshold is 0 here: it accepts every image.
        expect(v.judgeAccepted).toBe(true);
        expect(v.presence).toBeGreaterThanOrEqual(0);
        expect(v.presence).toBeLessThanOrEqual(1);
        expect(v.present).toBe(v.presence >= 0.3);
        expect(v.countCorrect).toBe(v.instances === 2);
        expect(typeof v.colourCorrect).toBe('boolean');
        expect(v.colour === null ? !v.present : ['red', 'green', 'blue', 'yellow', 'purple', 'orange'].includes(v.colour)).toBe(true);
        expect(['white', 'black', 'gray']).toContain(v.background);
        expect(v.backgroundCorrect).toBe(v.background === 'white');
        expect(v.allCorrect).toBe(v.present && v.countCorrect === true && v.colourCorrect === true && v.backgroundCorrect === true);
      }
    }
    const referee = stored.referee!;
    const share = (side: readonly RefereeScore[], check: (v: RefereeScore) => boolean) => side.filter(check).length / side.length;
    expect(referee.objectPresent).toMatchObject({
      n: 2,
      base: share(record.referee!.base, (v) => v.present),
      tuned: share(record.referee!.tuned, (v) => v.present),
    });
    for (const figure of [
      referee.objectPresent,
      referee.counting!,
      referee.colour!,
      referee.background!,
      referee.allCorrectImages,
      referee.allCorrectPrompts,
    ]) {
      for (const x of [figure.base, figure.tuned]) expect(x >= 0 && x <= 1).toBe(true);
      // One prompt: every resample is that prompt, so the interval is the gain itself.
      expect(figure.gainInterval).toEqual([expect.closeTo(figure.gain, 12), expect.closeTo(figure.gain, 12)]);
    }
    expect(referee.allCorrectPrompts.n).toBe(1);
    expect(referee.judgeAccepted).toMatchObject({ base: 1, tuned: 1 });
    expect(Object.keys(referee.hacking)).toEqual(['circle']);
    expect(referee.hacking['circle']).toMatchObject({ images: 2, base: 1 - referee.objectPresent.base, tuned: 1 - referee.objectPresent.tuned, judgeGain: 0 });
    expect(referee.flaggedClasses).toEqual([]);
    // A resumed evaluation (its manifest lost, its records kept) rebuilds the same figures from the records alone.
    await deps.store.delete(result.evaluation.manifest);
    const resumed = await runActivity(new MockActivityEnvironment(), createEvaluateRound(deps), {
      root: result.root,
      inputKey: artifactKeys.input(result.root),
      lora: result.training.lora,
      parent: null,
    });
    expect(resumed).toEqual(stored);
    expect(result.gate?.reasons).toHaveLength(5);
    expect(result.gate?.reasons[2]).toMatch(/^diversity \d\.\d{4} -> \d\.\d{4} against the base's: /);
    expect(result.gate?.reasons[3]).toMatch(/^referee object present \d+\.\d% against the base's \d+\.\d%: within the allowed drop of 100\.0%$/);
    expect(result.gate?.reasons[4]).toBe(
      stored.referee!.flaggedClasses.length === 0
        ? 'hacking check against the base: no class flagged'
        : `hacking check against the base flags ${stored.referee!.flaggedClasses.join(', ')}: the curation judge accepts more of their images that the referee rejects, beyond noise`,
    );
    expect(await deps.store.exists(result.report.report)).toBe(true);
    const report = (await deps.store.get(result.report.report)).toString();
    expect(report).toContain('Tuned beats base in');
    expect(report).toMatch(/Accuracy gain [+-]\d+\.\d points \(95% interval/);
    expect(report).toContain('Diversity (mean pairwise CLIP image distance');
    expect(report).toContain('Counting accuracy (detector&#39;s instance count is the prompt&#39;s): base');
    // What changed, and the trainer's loss curve from its metrics.json; images are links that resolve in the store.
    expect(report).toContain('What the round fixed and broke (by the referee)');
    expect(report).toContain('Against base: GenEval-style figures by the referee');
    expect(report).toContain('<tr><td>circle</td><td>2</td>');
    expect(report).toMatch(/training loss per step \(2 steps; first /);
    expect(report).not.toContain('data:image');
    const sources = [...report.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]!);
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) expect(existsSync(fileURLToPath(new URL(src, pathToFileURL(result.report.location))))).toBe(true);
    expect(await deps.store.list(`${result.training.lora}unet/`)).toContain(`${result.training.lora}unet/model.onnx`);

    // Every dataset image passed the rule and sits beside the prompt it was sampled for.
    const rows = (await deps.store.get(artifactKeys.datasetMetadata(result.root)))
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toHaveLength(result.dataset.kept);
    for (const row of rows) {
      const promptIndex = row['prompt_index'] as number;
      const record = await getJson<PromptScores>(deps.store, artifactKeys.scoreRecord(result.root, promptIndex % 2, promptIndex));
      const [best] = chooseImages(record.images, { rule: 'paper', minCombined: 0, perPrompt: 1, requireCount: false }, 0) as number[];
      expect(record.images[best!]?.key).toBe(row['source']);
      const png = await deps.store.get(`${result.dataset.dataset}${String(row['file_name'])}`);
      expect(png.equals(await deps.store.get(String(row['source'])))).toBe(true);
      expect(readText(png)).toMatchObject({ prompt: row['text'], class: row['class'] });
    }

    expect(progress).toMatchObject({
      stage: 'done',
      shards: { total: 2, sampled: 2, judged: 2 },
      images: { sampled: 6, judged: 6 },
      winRate: result.evaluation.winRate,
    });
    expect(description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.round)).toBe(1);
    expect(description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.winRate)).toBeCloseTo(result.evaluation.winRate);
    expect(description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.classes)).toEqual(['circle', 'square', 'triangle']);
    expect(description.memo).toMatchObject({ winRate: result.evaluation.winRate, kept: result.dataset.kept, report: result.report.location });
    expect(description.memo).toMatchObject({
      accuracyGainInterval: stored.accuracyGainInterval,
      diversityBase: stored.diversityBase,
      diversityTuned: stored.diversityTuned,
      diversityChange: stored.diversityChange,
      countAccuracyBase: stored.countAccuracyBase,
      countAccuracyTuned: stored.countAccuracyTuned,
      countGainInterval: stored.countGainInterval,
      referee: {
        table: expect.arrayContaining([expect.objectContaining({ metric: 'allCorrectPrompts', base: referee.allCorrectPrompts.base })]),
        flaggedClasses: [],
      },
    });
  });
});

/** Processes whose command line mentions `text` (to see that no trainer outlives its activity). */
async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const command = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (command.includes(text)) found.push(Number(entry));
  }
  return found;
}

async function until<T>(probe: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('cancelling a round', () => {
  it('stops the trainer child and publishes no LoRA', async () => {
    const workflowId = `cancel-${randomUUID()}`;
    await withWorkers(async () => {
      // Long enough a training that the cancellation finds it running.
      const longTraining = { ...roundInput, lora: { maxSteps: 1000, batchSize: 2, checkpointEvery: 0 } };
      const handle = await env.client.workflow.start('selfRewardRound', { taskQueue: TASK_QUEUES.workflows, workflowId, args: [longTraining] });
      const root = roundRoot(workflowId, handle.firstExecutionRunId, 1);
      const output = join(deps.workDir, ...root.split('/'), 'train', 'output');
      await until(async () => ((await processesMentioning(output)).length > 0 ? true : null), 120_000);
      await handle.cancel();
      const error = await handle.result().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkflowFailedError);
      expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect(await processesMentioning(output)).toEqual([]);
      expect(await deps.store.list(`${root}/lora`)).toEqual([]);
    });
  });
});

describe('selfRewardCampaign', () => {
  it('samples each round from the previous tuned generator and stops after the current round when asked', async () => {
    const workflowId = `campaign-${randomUUID()}`;
    const result = await withWorkers(async () => {
      const handle = await env.client.workflow.start('selfRewardCampaign', {
        taskQueue: TASK_QUEUES.workflows,
        workflowId,
        // A referee grades every round: the second round's evaluation has a parent, graded by it too.
        args: [{ round: { ...roundInput, evaluation: refereed }, rounds: 3, patience: 3 }],
      });
      await until(async () => ((await handle.query<RoundFigures[]>('rounds')).length === 1 ? true : null), 180_000);
      await handle.signal('stopAfterCurrentRound');
      const result = (await handle.result()) as CampaignResult;
      await recordHistory(env, workflowId);
      return result;
    });
    expect(result.stopReason).toBe('stop requested');
    expect(result.rounds.map((r) => [r.round, r.workflowId])).toEqual([
      [1, `${workflowId}-round-1`],
      [2, `${workflowId}-round-2`],
    ]);
    const secondRoot = roundRoot(`${workflowId}-round-2`, (await env.client.workflow.getHandle(`${workflowId}-round-2`).describe()).runId, 2);
    const secondRoundImage = (await deps.store.list(`${secondRoot}/samples/`)).find((k) => k.endsWith('.png'));
    const generator = readText(await deps.store.get(secondRoundImage ?? 'missing'))['generator'];
    expect(generator).toContain(`+ unet`);
    expect(generator).toContain(result.rounds[0]!.lora.replace(/\/$/, ''));
    // The referee's verdicts and figures against the parent: its images are judged like the base's.
    const second = await getJson<EvaluateResult>(deps.store, artifactKeys.evaluateManifest(secondRoot));
    const record = await getJson<EvaluationRecord>(deps.store, artifactKeys.evaluationRecord(secondRoot, 0));
    expect(record.referee?.parent).toHaveLength(2);
    expect(second.parent?.referee?.objectPresent).toMatchObject({
      n: 2,
      base: record.referee!.parent!.filter((v) => v.present).length / 2,
      tuned: record.referee!.tuned.filter((v) => v.present).length / 2,
    });
    expect(second.referee?.objectPresent.n).toBe(2);
  });
});
