/** The round's activities, built from injected dependencies; workers register the object this returns. */
import type { Activities } from '../contract/workers.js';
import { createCurateDataset } from './curate.js';
import type { ActivityDependencies } from './dependencies.js';
import { createEvaluateRound } from './evaluate.js';
import { asActivityFailure } from './failures.js';
import { createJudgeShard } from './judge.js';
import { createLineActivities } from './lines.js';
import { createWriteReport } from './report.js';
import { createSampleShard } from './sample.js';
import { createTrainLora } from './train.js';

/** The activity, with every error it throws passed through the one mapping of bad data to non-retryable failures. */
function mappingFailures<R, T>(activity: (request: R) => Promise<T>): (request: R) => Promise<T> {
  return async (request) => {
    try {
      return await activity(request);
    } catch (error) {
      throw asActivityFailure(error);
    }
  };
}

export function createActivities(deps: ActivityDependencies): Activities {
  const lines = createLineActivities(deps);
  return {
    sampleShard: mappingFailures(createSampleShard(deps)),
    judgeShard: mappingFailures(createJudgeShard(deps)),
    curateDataset: mappingFailures(createCurateDataset(deps)),
    trainLora: mappingFailures(createTrainLora(deps)),
    evaluateRound: mappingFailures(createEvaluateRound(deps)),
    writeReport: mappingFailures(createWriteReport(deps)),
    loadLine: mappingFailures(lines.loadLine),
    recordLineEvent: mappingFailures(lines.recordLineEvent),
    readLineEvent: mappingFailures(lines.readLineEvent),
    readChampion: mappingFailures(lines.readChampion),
    openLine: mappingFailures(lines.openLine),
    submitChallenger: mappingFailures(lines.submitChallenger),
  };
}

export type { ActivityDependencies, TrainerCommand } from './dependencies.js';
export { ModelRuntime } from './runtime.js';
export type { RoundActivities } from '../contract/activities.js';
export type { Activities } from '../contract/workers.js';
