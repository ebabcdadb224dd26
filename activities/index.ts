/** The round's activities, built from injected dependencies; workers register the object this returns. */
import type { RoundInput } from '../config/round.js';
import type { Activities } from '../contract/workers.js';
import { createCurateDataset } from './curate.js';
import type { ActivityDependencies } from './dependencies.js';
import { createEvaluateRound } from './evaluate.js';
import { asActivityFailure } from './failures.js';
import { requireAllowedPaths } from './paths.js';
import { createJudgeShard } from './judge.js';
import { createLineActivities } from './lines.js';
import { createPrepareRound } from './prepare.js';
import { createWriteReport } from './report.js';
import { createSampleShard } from './sample.js';
import { createTrainLora } from './train.js';

/**
 * The activity behind the one boundary every activity has: the paths a round's input names are
 * checked against the allowed folders first, and every error it throws passes through the one
 * mapping of bad data to non-retryable failures.
 */
function atBoundary<R, T>(deps: ActivityDependencies, activity: (request: R) => Promise<T>): (request: R) => Promise<T> {
  return async (request) => {
    try {
      const input = (request as { readonly input?: RoundInput }).input;
      if (input !== undefined) await requireAllowedPaths(deps, input);
      return await activity(request);
    } catch (error) {
      throw asActivityFailure(error);
    }
  };
}

export function createActivities(deps: ActivityDependencies): Activities {
  const lines = createLineActivities(deps);
  return {
    prepareRound: atBoundary(deps, createPrepareRound(deps)),
    sampleShard: atBoundary(deps, createSampleShard(deps)),
    judgeShard: atBoundary(deps, createJudgeShard(deps)),
    curateDataset: atBoundary(deps, createCurateDataset(deps)),
    trainLora: atBoundary(deps, createTrainLora(deps)),
    evaluateRound: atBoundary(deps, createEvaluateRound(deps)),
    writeReport: atBoundary(deps, createWriteReport(deps)),
    loadLine: atBoundary(deps, lines.loadLine),
    recordLineEvent: atBoundary(deps, lines.recordLineEvent),
    readLineEvent: atBoundary(deps, lines.readLineEvent),
    readChampion: atBoundary(deps, lines.readChampion),
    openLine: atBoundary(deps, lines.openLine),
    submitChallenger: atBoundary(deps, lines.submitChallenger),
  };
}

export type { ActivityDependencies, TrainerCommand } from './dependencies.js';
export { ModelRuntime } from './runtime.js';
export type { RoundActivities } from '../contract/activities.js';
export type { Activities } from '../contract/workers.js';
