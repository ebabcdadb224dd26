/**
 * The self-reward workflows and activities as a Temporal worker plugin. Add it to a worker of
 * your own and it sets the worker up for its role:
 *
 *   cpu  the workflows and the light activities (curate, report) on the `self-reward` queue
 *   gpu  the model activities (sample, judge, train, evaluate) on `self-reward-gpu`, one at a
 *        time: each GPU worker owns one device
 *   all  both in one process: the worker takes the cpu role, and a companion worker on the same
 *        connection takes the gpu role for as long as it runs
 */
import { fileURLToPath } from 'node:url';

import { SimplePlugin } from '@temporalio/plugin';
import { Worker, type WorkerOptions } from '@temporalio/worker';

import { createActivities } from '../activities/index.js';
import type { ActivityDependencies } from '../activities/dependencies.js';
import type { Activities } from '../contract/workers.js';
import { activitiesOf, TASK_QUEUES, type WorkerRole } from '../contract/workers.js';
import { dependenciesFromEnvironment } from './dependencies.js';
import { logFieldsInterceptor } from '../observability/logs.js';

/** The workflows' entry module, from the sources or from the build. */
export const WORKFLOWS_PATH = fileURLToPath(new URL(`../workflows/index${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

export interface SelfRewardPluginOptions {
  readonly role: WorkerRole | 'all';
  /** What the activities use; by default, read from the environment (SELF_REWARD_* and S3_* variables). */
  readonly dependencies?: ActivityDependencies;
}

/**
 * Settings every role shares. Cancellation reaches an activity in the reply to a heartbeat, which
 * the SDK sends at most every 0.8 × heartbeat timeout by default: 5 s keeps a cancel prompt. A
 * stopping worker lets running activities finish for a while (a shard nearly sampled, a report),
 * then cancels them, and a cancelled training stores its checkpoint.
 */
const SHARED: Partial<WorkerOptions> = { shutdownGraceTime: '30s', maxHeartbeatThrottleInterval: '5s', defaultHeartbeatThrottleInterval: '5s' };

/** A role's worker options, over the user's own (theirs win where they set one, except the queue the role is bound to). */
function roleOptions(role: WorkerRole, activities: Activities, options: WorkerOptions): WorkerOptions {
  // Every activity log line says which round, stage and shard it is about.
  const interceptors = { ...options.interceptors, activity: [...(options.interceptors?.activity ?? []), logFieldsInterceptor] };
  const withDefaults = { ...SHARED, ...options, interceptors };
  const own = activitiesOf(role, activities);
  return role === 'gpu'
    ? { ...withDefaults, taskQueue: TASK_QUEUES.gpu, activities: { ...options.activities, ...own }, maxConcurrentActivityTaskExecutions: 1 }
    : { ...withDefaults, taskQueue: TASK_QUEUES.workflows, activities: { ...options.activities, ...own }, workflowsPath: WORKFLOWS_PATH };
}

export class SelfRewardPlugin extends SimplePlugin {
  private readonly activities: Activities;

  constructor(private readonly settings: SelfRewardPluginOptions) {
    super({ name: 'self-reward-images' });
    this.activities = createActivities(settings.dependencies ?? dependenciesFromEnvironment());
  }

  override configureWorker(options: WorkerOptions): WorkerOptions {
    return roleOptions(this.settings.role === 'all' ? 'cpu' : this.settings.role, this.activities, super.configureWorker(options));
  }

  override async runWorker(worker: Worker, next: (worker: Worker) => Promise<void>): Promise<void> {
    if (this.settings.role !== 'all') return super.runWorker(worker, next);
    const { connection, namespace, shutdownGraceTimeMs } = worker.options;
    const gpu = await Worker.create(
      roleOptions('gpu', this.activities, { connection, namespace, taskQueue: TASK_QUEUES.gpu, shutdownGraceTime: shutdownGraceTimeMs }),
    );
    // Either worker stopping stops the other: the process serves both roles or neither.
    const gpuRun = gpu.run().finally(() => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    });
    try {
      await super.runWorker(worker, next);
    } finally {
      if (gpu.getState() === 'RUNNING') gpu.shutdown();
      await gpuRun;
    }
  }
}

export function selfRewardPlugin(options: SelfRewardPluginOptions): SelfRewardPlugin {
  return new SelfRewardPlugin(options);
}
