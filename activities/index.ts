/** The round's activities, built from injected dependencies; workers register the object this returns. */
import type { RoundActivities } from '../contract/activities.js';
import { createCurateDataset } from './curate.js';
import type { ActivityDependencies } from './dependencies.js';
import { createEvaluateRound } from './evaluate.js';
import { createJudgeShard } from './judge.js';
import { createWriteReport } from './report.js';
import { createSampleShard } from './sample.js';
import { createTrainLora } from './train.js';

export function createActivities(deps: ActivityDependencies): RoundActivities {
  return {
    sampleShard: createSampleShard(deps),
    judgeShard: createJudgeShard(deps),
    curateDataset: createCurateDataset(deps),
    trainLora: createTrainLora(deps),
    evaluateRound: createEvaluateRound(deps),
    writeReport: createWriteReport(deps),
  };
}

export type { ActivityDependencies, TrainerCommand } from './dependencies.js';
export { ModelRuntime } from './runtime.js';
export type { RoundActivities } from '../contract/activities.js';
