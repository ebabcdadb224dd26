/** The round's activities, built from injected dependencies; workers register the object this returns. */
import { CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailure, type Logger } from '@temporalio/common';

import type { RoundInput } from '../config/round.js';
import type { Activities } from '../contract/workers.js';
import { createCurateDataset } from './curate.js';
import type { ActivityDependencies } from './dependencies.js';
import { createEvaluateRound, createEvaluateShard, createSampleReferences } from './evaluate.js';
import { asActivityFailure } from './failures.js';
import { requireAllowedPaths } from './paths.js';
import { createJudgeShard } from './judge.js';
import { createLineActivities } from './lines.js';
import { createPrepareRound } from './prepare.js';
import { createWriteReport } from './report.js';
import { createSampleShard } from './sample.js';
import { createJoinTraining, createTrainLora } from './train.js';
import { createSampleValidationBase, createValidateLora } from './validate.js';

/** What a failed attempt counts as: its failure type, a cancellation, or a fault a retry may get past. */
function failureKind(failure: unknown): string {
  if (failure instanceof CancelledFailure) return 'Cancelled';
  if (failure instanceof ApplicationFailure && failure.nonRetryable && failure.type) return failure.type;
  return 'Retryable';
}

/**
 * The activity behind the one boundary every activity has: the paths a round's input names are
 * checked against the allowed folders first, and every error it throws passes through the one
 * mapping of bad data to non-retryable failures. Each attempt is counted and logged, with how it
 * ended.
 */
function atBoundary<R, T>(deps: ActivityDependencies, name: string, activity: (request: R) => Promise<T>): (request: R) => Promise<T> {
  return async (request) => {
    const started = performance.now();
    const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
    const log = activityLogger();
    deps.metrics.activityAttempts.record(1, { activity: name });
    try {
      const input = (request as { readonly input?: RoundInput }).input;
      if (input !== undefined) await requireAllowedPaths(deps, input);
      const result = await activity(request);
      log?.info(`${name} done in ${seconds()} s`);
      return result;
    } catch (error) {
      const failure = asActivityFailure(error);
      const kind = failureKind(failure);
      deps.metrics.activityFailures.record(1, { activity: name, type: kind });
      log?.warn(`${name} failed after ${seconds()} s (${kind}): ${(failure as Error).message?.slice(0, 500) ?? 'no message'}`, { failure: kind });
      throw failure;
    }
  };
}

/** The activity context's logger (its lines carry the workflow, run, attempt, round, stage and shard); none outside an activity. */
function activityLogger(): Logger | null {
  try {
    return Context.current().log;
  } catch {
    return null;
  }
}

export function createActivities(deps: ActivityDependencies): Activities {
  const lines = createLineActivities(deps);
  return {
    prepareRound: atBoundary(deps, 'prepareRound', createPrepareRound(deps)),
    sampleShard: atBoundary(deps, 'sampleShard', createSampleShard(deps)),
    judgeShard: atBoundary(deps, 'judgeShard', createJudgeShard(deps)),
    curateDataset: atBoundary(deps, 'curateDataset', createCurateDataset(deps)),
    trainLora: atBoundary(deps, 'trainLora', createTrainLora(deps)),
    joinTraining: atBoundary(deps, 'joinTraining', createJoinTraining(deps)),
    sampleReferences: atBoundary(deps, 'sampleReferences', createSampleReferences(deps)),
    evaluateShard: atBoundary(deps, 'evaluateShard', createEvaluateShard(deps)),
    evaluateRound: atBoundary(deps, 'evaluateRound', createEvaluateRound(deps)),
    sampleValidationBase: atBoundary(deps, 'sampleValidationBase', createSampleValidationBase(deps)),
    validateLora: atBoundary(deps, 'validateLora', createValidateLora(deps)),
    writeReport: atBoundary(deps, 'writeReport', createWriteReport(deps)),
    loadLine: atBoundary(deps, 'loadLine', lines.loadLine),
    recordLineEvent: atBoundary(deps, 'recordLineEvent', lines.recordLineEvent),
    readLineEvent: atBoundary(deps, 'readLineEvent', lines.readLineEvent),
    readChampion: atBoundary(deps, 'readChampion', lines.readChampion),
    openLine: atBoundary(deps, 'openLine', lines.openLine),
    submitChallenger: atBoundary(deps, 'submitChallenger', lines.submitChallenger),
  };
}

export type { ActivityDependencies, TrainerCommand } from './dependencies.js';
export { ModelRuntime } from './runtime.js';
export type { RoundActivities } from '../contract/activities.js';
export type { Activities } from '../contract/workers.js';
