/** `selfRewardRound`: orchestration only; every stage is an activity. */
import {
  ActivityCancellationType,
  ApplicationFailure,
  defineQuery,
  defineSignal,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';

import { NON_RETRYABLE_ERRORS, PROGRESS_SIGNAL } from '../activities/types.js';
import { validateRoundInput, type ActivitySettings } from '../config/round.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import {
  type RoundActivities,
  type ClassCounts,
  type CurateResult,
  type EvaluateResult,
  type JudgeShardResult,
  type ReportResult,
  type SampleShardResult,
  type TrainResult,
  TASK_QUEUES,
} from '../contract/activities.js';
import { roundRoot } from '../contract/keys.js';
import type { StageProgress } from '../contract/progress.js';
import { describeErrors } from '../config/schema.js';

export type Stage = 'sample' | 'judge' | 'curate' | 'train' | 'evaluate' | 'report' | 'done';

export interface RoundProgress {
  readonly round: number;
  readonly stage: Stage;
  readonly shards: { readonly total: number; readonly sampled: number; readonly judged: number };
  readonly images: { readonly sampled: number; readonly judged: number };
  readonly perClass: Readonly<Record<string, ClassCounts>>;
  readonly trainer: { readonly step: number; readonly steps: number; readonly loss: number | null } | null;
  readonly evaluated: number;
  readonly winRate: number | null;
  readonly report: string | null;
}

export interface RoundResult {
  readonly round: number;
  /** Folder of every artifact of the round. */
  readonly root: string;
  readonly samples: readonly SampleShardResult[];
  readonly judged: readonly JudgeShardResult[];
  readonly dataset: CurateResult;
  readonly training: TrainResult;
  readonly evaluation: EvaluateResult;
  readonly report: ReportResult;
}

export const progressQuery = defineQuery<RoundProgress>('progress');
export const stageProgressSignal = defineSignal<[StageProgress]>(PROGRESS_SIGNAL);

/**
 * The stages' activity options: model stages are long, heartbeating, on the GPU queue; every
 * stage waits for its activity to stop its work when cancelled (no half-published artifacts).
 */
function roundActivities({ heartbeatTimeoutSeconds, maximumAttempts }: ActivitySettings) {
  const common: ActivityOptions = {
    heartbeatTimeout: `${heartbeatTimeoutSeconds}s`,
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2m', maximumAttempts, nonRetryableErrorTypes: [...NON_RETRYABLE_ERRORS] },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
  const gpu: ActivityOptions = { ...common, taskQueue: TASK_QUEUES.gpu, startToCloseTimeout: '4h' };
  const models = proxyActivities<RoundActivities>(gpu);
  const training = proxyActivities<RoundActivities>({ ...gpu, startToCloseTimeout: '24h' });
  const light = proxyActivities<RoundActivities>({ ...common, startToCloseTimeout: '30m' });
  return {
    sampleShard: models.sampleShard,
    judgeShard: models.judgeShard,
    evaluateRound: models.evaluateRound,
    trainLora: training.trainLora,
    curateDataset: light.curateDataset,
    writeReport: light.writeReport,
  };
}

const sum = (values: Iterable<number>) => [...values].reduce((s, v) => s + v, 0);

export async function selfRewardRound(rawInput: unknown): Promise<RoundResult> {
  const checked = validateRoundInput(rawInput);
  if (!checked.ok) {
    throw ApplicationFailure.create({
      type: 'InvalidInput',
      message: `invalid round input: ${describeErrors(checked.errors)}`,
      nonRetryable: true,
      details: [checked.errors],
    });
  }
  const input = checked.value;
  const { sampleShard, judgeShard, curateDataset, trainLora, evaluateRound, writeReport } = roundActivities(input.activities);
  const { workflowId } = workflowInfo();
  const root = roundRoot(workflowId, input.round);

  let stage: Stage = 'sample';
  const sampled = new Map<number, number>();
  const judged = new Map<number, number>();
  const shardsSampled = new Set<number>();
  const shardsJudged = new Set<number>();
  let perClass: Record<string, ClassCounts> = {};
  let trainer: RoundProgress['trainer'] = null;
  let evaluated = 0;
  let winRate: number | null = null;
  let report: string | null = null;

  setHandler(stageProgressSignal, (update) => {
    if (update.shard !== undefined && update.sampled !== undefined) sampled.set(update.shard, update.sampled);
    if (update.shard !== undefined && update.judged !== undefined) judged.set(update.shard, update.judged);
    if (update.trainerStep !== undefined) trainer = { step: update.trainerStep, steps: update.trainerSteps ?? 0, loss: update.loss ?? null };
    if (update.evaluated !== undefined) evaluated = update.evaluated;
  });
  setHandler(progressQuery, () => ({
    round: input.round,
    stage,
    shards: { total: input.shards, sampled: shardsSampled.size, judged: shardsJudged.size },
    images: { sampled: sum(sampled.values()), judged: sum(judged.values()) },
    perClass,
    trainer,
    evaluated,
    winRate,
    report,
  }));
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.round, value: input.round }]);

  const shards = Array.from({ length: input.shards }, (_, shard) => shard);
  const samples = await Promise.all(
    shards.map(async (shard) => {
      const result = await sampleShard({ root, input, shard });
      sampled.set(shard, result.images);
      shardsSampled.add(shard);
      return result;
    }),
  );
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.classes, value: [...new Set(samples.flatMap((s) => s.classes))].sort() }]);

  stage = 'judge';
  const judgedShards = await Promise.all(
    shards.map(async (shard) => {
      const result = await judgeShard({ root, input, shard });
      judged.set(shard, result.images);
      shardsJudged.add(shard);
      return result;
    }),
  );

  stage = 'curate';
  const dataset = await curateDataset({ root, input });
  perClass = { ...dataset.perClass };

  stage = 'train';
  const training = await trainLora({ root, input });
  trainer = { step: training.steps, steps: training.steps, loss: training.finalLoss };

  stage = 'evaluate';
  const evaluation = await evaluateRound({ root, input });
  winRate = evaluation.winRate;
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.winRate, value: evaluation.winRate }]);

  stage = 'report';
  const written = await writeReport({ root, input, workflowId });
  report = written.location;
  upsertMemo({
    winRate: evaluation.winRate,
    winRateInterval: evaluation.winRateInterval,
    meanClipBase: evaluation.meanClipBase,
    meanClipTuned: evaluation.meanClipTuned,
    accuracyBase: evaluation.accuracyBase,
    accuracyTuned: evaluation.accuracyTuned,
    kept: dataset.kept,
    dropped: dataset.dropped,
    report: written.location,
  });
  stage = 'done';
  return { round: input.round, root, samples, judged: judgedShards, dataset, training, evaluation, report: written };
}
