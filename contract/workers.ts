/** Which worker serves what: the task queues, the worker roles and the activities of each. Free of Node imports: workflows read it. */
import type { RoundActivities } from './activities.js';
import type { LineActivities } from './lines.js';

/** Task queues (deployment defaults). Free of Node imports: workflows read them. */
export const TASK_QUEUES = {
  /** Workflows and the light activities (curate, report). */
  workflows: 'self-reward',
  /** Model work: sample, judge, train, evaluate; one activity at a time per device. */
  gpu: 'self-reward-gpu',
} as const;

/** The task queue one GPU worker alone polls (a shard's judge goes where its images are cached). */
export const workerQueueName = (workerId: string): string => `${TASK_QUEUES.gpu}@${workerId}`;

/** Every worker's own queue, as a Prometheus label regex (the dashboard's slots panel). */
export const WORKER_QUEUE_PATTERN = `${TASK_QUEUES.gpu}@.+`;

export type WorkerRole = 'gpu' | 'cpu';

/** Every activity of the plugin: a round's stages and the model lines'. */
export type Activities = RoundActivities & LineActivities;

/** Which worker role runs each activity: model work on the GPU queue, the rest with the workflows. */
export const ACTIVITY_ROLES = {
  prepareRound: 'cpu',
  sampleShard: 'gpu',
  judgeShard: 'gpu',
  trainLora: 'gpu',
  joinTraining: 'gpu',
  sampleReferences: 'gpu',
  evaluateShard: 'gpu',
  evaluateRound: 'gpu',
  sampleValidationBase: 'gpu',
  validateLora: 'gpu',
  curateDataset: 'cpu',
  writeReport: 'cpu',
  loadLine: 'cpu',
  recordLineEvent: 'cpu',
  readLineEvent: 'cpu',
  readChampion: 'cpu',
  openLine: 'cpu',
  submitChallenger: 'cpu',
} as const satisfies Record<keyof Activities, WorkerRole>;

/** The activities of one worker role. */
export function activitiesOf(role: WorkerRole, all: Partial<Activities>): Partial<Activities> {
  return Object.fromEntries(Object.entries(all).filter(([name]) => ACTIVITY_ROLES[name as keyof Activities] === role));
}
