/**
 * The self-reward workflows and activities as a Temporal worker plugin. Add it to a worker of
 * your own and it sets the worker up for its role:
 *
 *   cpu  the workflows and the light activities (curate, report) on the `self-reward` queue
 *   gpu  the model activities (sample, judge, train, evaluate) on `self-reward-gpu`, one at a
 *        time: each GPU worker owns one device. A companion worker on the same connection
 *        serves them on a queue of this worker's own (`workerQueue`), where the workflow
 *        schedules the judge of a shard this worker sampled: its images are in this worker's cache
 *   all  both in one process: the worker takes the cpu role, and companion workers on the same
 *        connection take the gpu role (both its queues) for as long as it runs
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import type { ClientInterceptors } from '@temporalio/client';
import { ValueError } from '@temporalio/common';
import { SimplePlugin } from '@temporalio/plugin';
import { Worker, type WorkerInterceptors, type WorkerOptions } from '@temporalio/worker';

import { createActivities } from '../activities/index.js';
import type { ActivityDependencies } from '../activities/dependencies.js';
import type { Activities } from '../contract/workers.js';
import { activitiesOf, TASK_QUEUES, workerQueueName, type WorkerRole } from '../contract/workers.js';
import { dependenciesFromEnvironment } from './dependencies.js';
import { logFieldsInterceptor } from '../observability/logs.js';
import type { WorkerTracing } from '../observability/tracing.js';

const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

/** The workflows' entry module, from the sources or from the build. */
export const WORKFLOWS_PATH = fileURLToPath(new URL(`../workflows/index${extension}`, import.meta.url));

/** The workflow interceptors of tracing, bundled with the workflows when the worker traces. */
export const WORKFLOW_TRACING_PATH = fileURLToPath(new URL(`../workflows/tracing${extension}`, import.meta.url));

export interface SelfRewardPluginOptions {
  readonly role: WorkerRole | 'all';
  /** What the activities use; by default, read from the environment (SELF_REWARD_* and S3_* variables). */
  readonly dependencies?: ActivityDependencies;
  /** Traces of the workflows and activities (and the trainer's phases), from `startTracing`; none by default. */
  readonly tracing?: WorkerTracing;
}

/**
 * Settings every role shares. Cancellation reaches an activity in the reply to a heartbeat, which
 * the SDK sends at most every 0.8 × heartbeat timeout by default: 5 s keeps a cancel prompt. A
 * stopping worker lets running activities finish for a while (a shard nearly sampled, a report),
 * then cancels them, and a cancelled training stores its checkpoint.
 */
const SHARED: Partial<WorkerOptions> = { shutdownGraceTime: '30s', maxHeartbeatThrottleInterval: '5s', defaultHeartbeatThrottleInterval: '5s' };

/** The worker's client with tracing's interceptors after the user's own. */
function tracedClient(own: ClientInterceptors | undefined, tracing: WorkerTracing): ClientInterceptors {
  const workflow = own?.workflow ?? [];
  if (!Array.isArray(workflow)) throw new ValueError('tracing cannot be combined with the deprecated { calls } form of workflow client interceptors');
  return { ...own, workflow: [...workflow, ...tracing.clientInterceptors.workflow] };
}

/** The user's interceptors, then the log fields', then tracing's. */
function roleInterceptors(role: WorkerRole, own: WorkerInterceptors | undefined, tracing: WorkerTracing | undefined): WorkerInterceptors {
  // Every activity log line says which round, stage and shard it is about.
  const activity = [...(own?.activity ?? []), logFieldsInterceptor, ...(tracing?.activityInterceptors ?? [])];
  if (tracing === undefined) return { ...own, activity };
  const client = tracedClient(own?.client, tracing);
  // The workflow half of tracing runs in the workflows' sandbox, which only the workflow role has.
  return role === 'gpu'
    ? { ...own, activity, client }
    : { ...own, activity, client, workflowModules: [...(own?.workflowModules ?? []), WORKFLOW_TRACING_PATH] };
}

/**
 * A role's worker options, over the user's own (theirs win where they set one, except the queue
 * the role is bound to: the shared queue of the role, or for the gpu role the worker's own).
 */
function roleOptions(
  role: WorkerRole,
  activities: Activities,
  options: WorkerOptions,
  tracing: WorkerTracing | undefined,
  gpuQueue: string = TASK_QUEUES.gpu,
): WorkerOptions {
  const withDefaults = { ...SHARED, ...options, interceptors: roleInterceptors(role, options.interceptors, tracing) };
  const own = activitiesOf(role, activities);
  const sinks = tracing === undefined ? {} : { sinks: { ...options.sinks, ...tracing.sinks } };
  return role === 'gpu'
    ? { ...withDefaults, taskQueue: gpuQueue, activities: { ...options.activities, ...own }, maxConcurrentActivityTaskExecutions: 1 }
    : { ...withDefaults, taskQueue: TASK_QUEUES.workflows, activities: { ...options.activities, ...own }, workflowsPath: WORKFLOWS_PATH, ...sinks };
}

export class SelfRewardPlugin extends SimplePlugin {
  private readonly activities: Activities;
  /**
   * The GPU queue only this worker polls; null for the cpu role. Unique per plugin, hence per
   * worker and device (a host's GPU workers may all see their device as cuda:0).
   */
  readonly workerQueue: string | null;

  constructor(private readonly settings: SelfRewardPluginOptions) {
    super({ name: 'self-reward-images' });
    this.workerQueue = settings.role === 'cpu' ? null : workerQueueName(randomUUID());
    const dependencies = settings.dependencies ?? dependenciesFromEnvironment();
    this.activities = createActivities(this.workerQueue === null ? dependencies : { ...dependencies, workerQueue: this.workerQueue });
  }

  override configureWorker(options: WorkerOptions): WorkerOptions {
    return roleOptions(this.settings.role === 'all' ? 'cpu' : this.settings.role, this.activities, super.configureWorker(options), this.settings.tracing);
  }

  override async runWorker(worker: Worker, next: (worker: Worker) => Promise<void>): Promise<void> {
    if (this.workerQueue === null) return super.runWorker(worker, next);
    const { connection, namespace, shutdownGraceTimeMs } = worker.options;
    const queues = this.settings.role === 'all' ? [TASK_QUEUES.gpu, this.workerQueue] : [this.workerQueue];
    const companions = await Promise.all(
      queues.map((taskQueue) =>
        Worker.create(
          roleOptions('gpu', this.activities, { connection, namespace, taskQueue, shutdownGraceTime: shutdownGraceTimeMs }, this.settings.tracing, taskQueue),
        ),
      ),
    );
    // Any worker stopping stops the others: the process serves all its queues or none.
    const runs = companions.map((companion) =>
      companion.run().finally(() => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
      }),
    );
    try {
      await super.runWorker(worker, next);
    } finally {
      for (const companion of companions) if (companion.getState() === 'RUNNING') companion.shutdown();
      await Promise.all(runs);
    }
  }
}

export function selfRewardPlugin(options: SelfRewardPluginOptions): SelfRewardPlugin {
  return new SelfRewardPlugin(options);
}
