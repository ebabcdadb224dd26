/** Task queues (deployment defaults; workers and clients may override them). Free of Node imports: workflows read them. */
export const TASK_QUEUES = {
  /** Workflows and the light activities (curate, report). */
  workflows: 'self-reward',
  /** Model work: sample, judge, train, evaluate; one activity at a time per device. */
  gpu: 'self-reward-gpu',
} as const;
