/** `selfRewardRound`: sample, judge, curate, train, evaluate, report; orchestration only, every stage is an activity. */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  patched,
  proxyActivities,
  sleep,
  TimeoutFailure,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityInterfaceFor,
  type ActivityOptions,
} from '@temporalio/workflow';

import { gateVerdict } from '../config/gate.js';
import { validateRoundInput } from '../config/round.js';
import { describeErrors } from '../config/schema.js';
import { classesAttribute, SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import {
  currentEvaluation,
  refereeTable,
  type EvaluateShardRequest,
  type JudgeRequest,
  type JudgeShardResult,
  type RoundActivities,
  type RoundRequest,
  type SampleShardResult,
  type TrainRequest,
  type TrainResult,
} from '../contract/activities.js';
import type { LoraSettings, RoundInput } from '../config/round.js';
import { TASK_QUEUES } from '../contract/workers.js';
import { NON_RETRYABLE_FAILURES } from '../contract/failures.js';
import { roundRoot } from '../contract/keys.js';
import { loraSeedsFigures, trainerSeeds } from '../contract/seeds.js';
import type { RoundResult } from '../contract/workflows.js';
import type { ActivitySettings } from '../config/round.js';
import { RoundProgressTracker } from './progress.js';
import { together } from './together.js';

/**
 * The stages' activity options: model stages are long, heartbeating, on the GPU queue; every
 * stage waits for its activity to stop its work when cancelled (no half-published artifacts).
 */
function roundActivities({ heartbeatTimeoutSeconds, maximumAttempts }: ActivitySettings): ActivityInterfaceFor<RoundActivities> {
  const common: ActivityOptions = {
    heartbeatTimeout: `${heartbeatTimeoutSeconds}s`,
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2m', maximumAttempts, nonRetryableErrorTypes: [...NON_RETRYABLE_FAILURES] },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
  const gpu: ActivityOptions = { ...common, taskQueue: TASK_QUEUES.gpu, startToCloseTimeout: '4h' };
  const models = proxyActivities<RoundActivities>(gpu);
  const training = proxyActivities<RoundActivities>({ ...gpu, startToCloseTimeout: '24h' });
  const light = proxyActivities<RoundActivities>({ ...common, startToCloseTimeout: '30m' });
  return {
    prepareRound: light.prepareRound,
    sampleShard: models.sampleShard,
    judgeShard: models.judgeShard,
    sampleReferences: models.sampleReferences,
    evaluateShard: models.evaluateShard,
    evaluateRound: models.evaluateRound,
    sampleValidationBase: models.sampleValidationBase,
    validateLora: models.validateLora,
    trainLora: training.trainLora,
    joinTraining: training.joinTraining,
    curateDataset: light.curateDataset,
    writeReport: light.writeReport,
  };
}

/** Rounds from this version on judge a shard on the worker that sampled it first; recorded histories judged every shard on the shared queue. */
const JUDGE_ON_SAMPLING_WORKER = 'judge-on-sampling-worker';

/**
 * Judges a shard on the worker that sampled it, whose cache holds its images, when that worker
 * takes the task within `judgeScheduleToStartSeconds`; when it does not (it is gone, or busy
 * judging another shard), any GPU worker judges it, reading the images from the store.
 */
async function judgeSampled(
  activities: ActivityInterfaceFor<RoundActivities>,
  settings: ActivitySettings,
  request: JudgeRequest,
  sampled: SampleShardResult,
  summary: string,
): Promise<JudgeShardResult> {
  const queue = sampled.workerQueue;
  if (queue === undefined || !patched(JUDGE_ON_SAMPLING_WORKER)) return activities.judgeShard.executeWithOptions({ summary }, [request]);
  try {
    return await activities.judgeShard.executeWithOptions(
      { summary: `${summary} on the worker that sampled it`, taskQueue: queue, scheduleToStartTimeout: `${settings.judgeScheduleToStartSeconds}s` },
      [request],
    );
  } catch (error) {
    const notTaken = error instanceof ActivityFailure && error.cause instanceof TimeoutFailure && error.cause.timeoutType === 'SCHEDULE_TO_START';
    if (!notTaken) throw error;
    return activities.judgeShard.executeWithOptions({ summary: `${summary} (the worker that sampled it did not take it)` }, [request]);
  }
}

/**
 * A LoRA trained on `lora.workers` GPU workers: `trainLora` leads, and each `joinTraining` is one
 * more worker that trains with it (on one worker, `trainLora` alone, as a round always trained).
 * The leader is scheduled first, so that the first free worker leads; once it is done, or has
 * failed, the others still queued are cancelled: the training no longer needs them. A joining
 * worker's failure fails nothing: the leader trains with those that came.
 */
async function trainOnWorkers(
  activities: ActivityInterfaceFor<RoundActivities>,
  lora: LoraSettings,
  request: TrainRequest,
  summary: string,
): Promise<TrainResult> {
  if (lora.workers === 1) return activities.trainLora.executeWithOptions({ summary }, [request]);
  const leader = activities.trainLora.executeWithOptions({ summary: `${summary}, leading up to ${lora.workers} GPU workers` }, [request]);
  const others = new CancellationScope();
  const joined = others.run(() =>
    Promise.allSettled(
      Array.from({ length: lora.workers - 1 }, (_, i) =>
        activities.joinTraining.executeWithOptions({ summary: `join the training as GPU worker ${i + 2} of up to ${lora.workers}` }, [request]),
      ),
    ),
  );
  try {
    return await leader;
  } finally {
    others.cancel();
    await joined;
  }
}

/**
 * Rounds from this version on schedule the references' held-out images `TEAM_HEAD_START_TIME`
 * after a training team's activities, so that GPU workers that are idle take the team's first;
 * recorded histories scheduled them together.
 */
const TEAM_HEAD_START = 'team-head-start';
const TEAM_HEAD_START_TIME = '5 seconds';

/** Rounds from this version on sample and judge the tuned generator's held-out images in shards; recorded histories evaluated in one activity. */
const SHARDED_EVALUATION = 'sharded-evaluation';

/**
 * The held-out images of the tuned generator, sampled and judged in as many shards as the round
 * samples in (one per held-out prompt at most), side by side on the GPU workers; `evaluateRound`
 * then finds every image and record stored and computes the figures.
 */
async function evaluateInShards(
  activities: ActivityInterfaceFor<RoundActivities>,
  progress: RoundProgressTracker,
  input: RoundInput,
  request: Omit<EvaluateShardRequest, 'shard' | 'shards'>,
  heldOutPrompts: number,
): Promise<void> {
  const shards = Math.max(1, Math.min(input.shards, heldOutPrompts));
  await together(
    Array.from({ length: shards }, (_, shard) => async () => {
      const summary = `evaluate shard ${shard + 1} of ${shards}: the tuned generator's held-out images, judged`;
      progress.evaluationShardDone(await activities.evaluateShard.executeWithOptions({ summary }, [{ ...request, shard, shards }]), shards);
    }),
  );
}

/**
 * `lora.seeds` LoRAs from the one dataset, side by side (each a GPU worker's), each with its own
 * trainer seed and keys; each is validated on the withheld training prompts as soon as it is
 * trained, against the base's validation images, sampled once meanwhile (as are the references'
 * held-out images). Returns the kept LoRA's training with every LoRA's figures.
 */
async function trainSeveral(
  activities: ActivityInterfaceFor<RoundActivities>,
  progress: RoundProgressTracker,
  input: RoundInput,
  request: RoundRequest,
  dataset: string,
  what: string,
  sampleReferences: () => Promise<unknown>,
): Promise<TrainResult> {
  const seeds = trainerSeeds(input.lora);
  // Started once, by the first stage that needs it; every LoRA's validation waits for it, so none samples the base itself.
  let validationBase: Promise<unknown> | null = null;
  const sampleValidationBase = () =>
    (validationBase ??= activities.sampleValidationBase.executeWithOptions({ summary: 'sample the validation images of the base while the LoRAs train' }, [
      request,
    ]));
  const [validated] = await together([
    () =>
      together(
        seeds.map((seed) => async () => {
          const trained = await trainOnWorkers(
            activities,
            input.lora,
            { ...request, dataset, seed },
            `train LoRA ${seed - input.lora.seed + 1} of ${seeds.length} (trainer seed ${seed}), rank ${input.lora.rank}, ${what}`,
          );
          progress.seedTrained(trained);
          await sampleValidationBase();
          const validation = await activities.validateLora.executeWithOptions({ summary: `validate the LoRA of trainer seed ${seed} against the base` }, [
            { ...request, lora: trained.lora, seed },
          ]);
          progress.seedValidated(validation);
          return { trained, validation };
        }),
      ),
    sampleValidationBase,
    sampleReferences,
  ]);
  const figures = loraSeedsFigures(validated.map((v) => v.validation));
  const kept = { ...validated.find((v) => v.validation.seed === figures.kept)!.trained, seeds: figures };
  progress.trained(kept);
  return kept;
}

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
  const activities = roundActivities(input.activities);
  const { workflowId, runId, originalExecutionRunId } = workflowInfo();
  // Keys carry the run: a reset run re-executes the stages after its reset point into fresh keys.
  const root = roundRoot(workflowId, runId, input.round);
  const progress = new RoundProgressTracker(input.round, input.dataset === null ? input.shards : 0, input.lora.seeds);
  progress.listen();
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.round, value: input.round }]);

  // Everything that can be checked before sampling is; the stages are handed the stored input's key.
  const prepared = await activities.prepareRound.executeWithOptions({ summary: 'check the input, its files and models; store it' }, [{ root, input }]);
  progress.prepared(prepared);
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.classes, value: classesAttribute(prepared.classes) }]);
  const request = { root, inputKey: prepared.input };

  progress.enter('sample');
  // A round that retrains an earlier dataset skips straight to curation, which copies it in.
  // Each shard is judged as soon as it is sampled, so no GPU waits for the slowest shard.
  const shards = input.dataset === null ? Array.from({ length: input.shards }, (_, shard) => shard) : [];
  const pipelines = await together(
    shards.map((shard) => async () => {
      const sampleSummary = `sample shard ${shard + 1} of ${input.shards}: ${input.samplesPerPrompt} images per prompt`;
      const sampled = await activities.sampleShard.executeWithOptions({ summary: sampleSummary }, [{ ...request, shard }]);
      progress.shardSampled(sampled);
      const judgeSummary = `judge shard ${shard + 1} of ${input.shards}`;
      const judged = await judgeSampled(activities, input.activities, { ...request, shard, samples: sampled.manifest }, sampled, judgeSummary);
      progress.shardJudged(judged);
      return { sampled, judged };
    }),
  );
  const samples = pipelines.map((p) => p.sampled);
  const judged = pipelines.map((p) => p.judged);

  progress.enter('curate');
  const include = input.dataset === null ? input.includeDatasets : [input.dataset, ...input.includeDatasets];
  const curateSummary = `curate: up to ${input.selection.perPrompt} image(s) per prompt (rule ${input.selection.rule})${include.length > 0 ? ` and ${include.length} earlier dataset(s)` : ''}`;
  const dataset = await activities.curateDataset.executeWithOptions({ summary: curateSummary }, [
    { ...request, judged: judged.map((j) => j.manifest), include },
  ]);
  progress.curated(dataset);

  progress.enter('train');
  const parent = input.generator.tunedUnet;
  const steps = input.lora.maxSteps === null ? `${input.lora.epochs} epochs` : `${input.lora.maxSteps} steps`;
  // The references' held-out images do not depend on the LoRA: they are sampled while it trains.
  const referencesSummary = `sample the held-out images of the base${parent === null ? '' : ' and the parent'} while the LoRA trains`;
  // A LoRA that trains on several workers may hold every worker there is: the references then
  // wait for it, and are sampled in as many parts as it had workers, side by side.
  const referenceParts = Math.max(1, Math.min(input.lora.workers, prepared.heldOutPrompts));
  const sampleReferences = async () => {
    // A task queue hands out tasks scheduled together in no set order: a part of the references
    // could take a worker before the team's leader, and its members would sit idle waiting for it.
    if (input.lora.workers > 1 && patched(TEAM_HEAD_START)) await sleep(TEAM_HEAD_START_TIME);
    return referenceParts === 1
      ? activities.sampleReferences.executeWithOptions({ summary: referencesSummary }, [{ ...request, parent }])
      : together(
          Array.from(
            { length: referenceParts },
            (_, shard) => () =>
              activities.sampleReferences.executeWithOptions({ summary: `${referencesSummary} (part ${shard + 1} of ${referenceParts})` }, [
                { ...request, parent, part: { shard, shards: referenceParts } },
              ]),
          ),
        );
  };
  // One LoRA runs the commands a round always ran (recorded histories replay); several are chosen between.
  const training =
    input.lora.seeds === 1
      ? (
          await together([
            async () => {
              const trained = await trainOnWorkers(
                activities,
                input.lora,
                { ...request, dataset: dataset.dataset },
                `train a rank-${input.lora.rank} LoRA on ${dataset.kept} images, ${steps}`,
              );
              // Shown as soon as it ends: the references may still be sampling.
              progress.trained(trained);
              return trained;
            },
            sampleReferences,
          ])
        )[0]
      : await trainSeveral(activities, progress, input, request, dataset.dataset, `on ${dataset.kept} images, ${steps}`, sampleReferences);

  progress.enter('evaluate');
  if (patched(SHARDED_EVALUATION)) {
    await evaluateInShards(activities, progress, input, { ...request, lora: training.lora, parent }, prepared.heldOutPrompts);
  }
  // Histories of earlier versions hold results without `parent`, the accuracy gain's interval, diversity or counting.
  const evaluateSummary = `evaluate the tuned generator against the base${parent === null ? '' : ' and its parent'} on held-out prompts`;
  const evaluation = await activities.evaluateRound
    .executeWithOptions({ summary: evaluateSummary }, [
      { ...request, lora: training.lora, parent, ...(training.seeds === undefined ? {} : { seeds: training.seeds }) },
    ])
    .then(currentEvaluation);
  progress.evaluated(evaluation);
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.winRate, value: evaluation.winRate }]);
  const gate = input.gate === null ? null : gateVerdict(input.gate, evaluation.parent ?? evaluation, parent === null ? 'the base' : 'the parent');
  if (gate !== null) progress.gated(gate);

  progress.enter('report');
  const run = { workflowId, runId, resetFrom: runId === originalExecutionRunId ? null : originalExecutionRunId };
  const report = await activities.writeReport.executeWithOptions({ summary: 'write the HTML report' }, [
    { ...request, run, judged: judged.map((j) => j.manifest), dataset, training, evaluation, gate },
  ]);
  upsertMemo({
    winRate: evaluation.winRate,
    winRateInterval: evaluation.winRateInterval,
    meanClipBase: evaluation.meanClipBase,
    meanClipTuned: evaluation.meanClipTuned,
    accuracyBase: evaluation.accuracyBase,
    accuracyTuned: evaluation.accuracyTuned,
    accuracyGainInterval: evaluation.accuracyGainInterval,
    diversityBase: evaluation.diversityBase,
    diversityTuned: evaluation.diversityTuned,
    diversityChange: evaluation.diversityChange,
    countAccuracyBase: evaluation.countAccuracyBase,
    countAccuracyTuned: evaluation.countAccuracyTuned,
    countGainInterval: evaluation.countGainInterval,
    // The referee's GenEval-style table and the classes its hacking check flags; null without a referee.
    referee: evaluation.referee === null ? null : refereeTable(evaluation.referee),
    ...(evaluation.parent === null
      ? {}
      : {
          parentWinRate: evaluation.parent.winRate,
          parentWinRateInterval: evaluation.parent.winRateInterval,
          parentAccuracyGainInterval: evaluation.parent.accuracyGainInterval,
          parentDiversityChange: evaluation.parent.diversityChange,
          parentCountGainInterval: evaluation.parent.countGainInterval,
          parentReferee: evaluation.parent.referee === null ? null : refereeTable(evaluation.parent.referee),
        }),
    ...(gate === null ? {} : { gatePassed: gate.passed, gateReasons: gate.reasons }),
    ...(run.resetFrom === null ? {} : { resetFrom: run.resetFrom }),
    ...(training.seeds === undefined ? {} : { loraSeeds: training.seeds }),
    kept: dataset.kept,
    dropped: dataset.dropped,
    report: report.location,
  });
  progress.done(report.location);
  return { round: input.round, root, samples, judged, dataset, training, evaluation, gate, report };
}
