/** The round's activities, built from injected dependencies; workers register the object this returns. */
import { createCurateDataset } from './curate.js';
import type { ActivityDependencies } from './dependencies.js';
import { createEvaluateRound } from './evaluate.js';
import { createJudgeShard } from './judge.js';
import { createWriteReport } from './report.js';
import { createSampleShard } from './sample.js';
import { createTrainLora } from './train.js';

export function createActivities(deps: ActivityDependencies) {
  return {
    sampleShard: createSampleShard(deps),
    judgeShard: createJudgeShard(deps),
    curateDataset: createCurateDataset(deps),
    trainLora: createTrainLora(deps),
    evaluateRound: createEvaluateRound(deps),
    writeReport: createWriteReport(deps),
  };
}

export type RoundActivities = ReturnType<typeof createActivities>;

/** Which activities run where: model work on the GPU task queue, the rest with the workflows. */
export const GPU_ACTIVITIES = ['sampleShard', 'judgeShard', 'trainLora', 'evaluateRound'] as const satisfies readonly (keyof RoundActivities)[];
export const CPU_ACTIVITIES = ['curateDataset', 'writeReport'] as const satisfies readonly (keyof RoundActivities)[];

export function pickActivities<K extends keyof RoundActivities>(all: RoundActivities, names: readonly K[]): Pick<RoundActivities, K> {
  return Object.fromEntries(names.map((name) => [name, all[name]])) as Pick<RoundActivities, K>;
}

export type { ActivityDependencies, TrainerCommand } from './dependencies.js';
export { NON_RETRYABLE_ERRORS, PROGRESS_SIGNAL } from './types.js';
