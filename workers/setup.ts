/** What the worker entry points share: dependencies from the environment, the plugin, the worker options. */
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';

import { SimplePlugin } from '@temporalio/plugin';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';

import { createActivities, CPU_ACTIVITIES, GPU_ACTIVITIES, pickActivities, type ActivityDependencies } from '../activities/index.js';
import { ModelRuntime } from '../activities/runtime.js';
import { fromEnvironment } from '../config/environment.js';
import { storeFromEnvironment } from '../store/config.js';
import { TASK_QUEUES } from '../contract/activities.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

/**
 * Activity dependencies from the environment: SELF_REWARD_DEVICE, SELF_REWARD_WORK_DIR,
 * SELF_REWARD_TRAINER, SELF_REWARD_THREADS and the store's settings (see store/config.ts); each
 * variable's meaning and default are in config/environment.ts.
 */
export function dependenciesFromEnvironment(env: NodeJS.ProcessEnv = process.env): ActivityDependencies {
  const device = fromEnvironment(env, 'SELF_REWARD_DEVICE');
  const threadsText = fromEnvironment(env, 'SELF_REWARD_THREADS');
  const threads = threadsText === undefined ? undefined : Number(threadsText);
  if (threads !== undefined && !(Number.isInteger(threads) && threads > 0)) {
    throw new Error(`SELF_REWARD_THREADS: expected a positive integer, got ${JSON.stringify(threadsText)}`);
  }
  const trainer = fromEnvironment(env, 'SELF_REWARD_TRAINER')
    ?.split(' ')
    .filter((part) => part !== '') ?? [join(REPO_ROOT, '.venv', 'bin', 'python'), '-m', 'loratrain'];
  return {
    store: storeFromEnvironment(env),
    runtime: new ModelRuntime(device, threads),
    trainer: { command: trainer, cwd: join(REPO_ROOT, 'python'), env: { PYTHONPATH: join(REPO_ROOT, 'python') }, stopGraceMs: 60_000 },
    device,
    workDir: resolve(fromEnvironment(env, 'SELF_REWARD_WORK_DIR')),
  };
}

/** The workflows and every activity as a plugin, for users who add them to their own workers. */
export function selfRewardPlugin(deps: ActivityDependencies): SimplePlugin {
  return new SimplePlugin({ name: 'self-reward-images', activities: createActivities(deps), workflowsPath: WORKFLOWS_PATH });
}

export type WorkerRole = 'gpu' | 'cpu';

/**
 * Options of a worker by role. GPU: model activities, one at a time (one device). CPU: the
 * workflows and the light activities. Both wait `shutdownGraceTime` for running activities
 * before cancelling them, which stops the trainer with a checkpoint.
 */
export function workerOptions(role: WorkerRole, deps: ActivityDependencies, connection: NativeConnection, namespace: string): WorkerOptions {
  const all = createActivities(deps);
  // Cancellation reaches an activity in the reply to a heartbeat, and the SDK sends them at most
  // every 0.8 × heartbeat timeout (up to 60 s) by default: 5 s keeps a cancel prompt.
  const common = { connection, namespace, shutdownGraceTime: '30s', maxHeartbeatThrottleInterval: '5s', defaultHeartbeatThrottleInterval: '5s' } as const;
  return role === 'gpu'
    ? { ...common, taskQueue: TASK_QUEUES.gpu, activities: pickActivities(all, GPU_ACTIVITIES), maxConcurrentActivityTaskExecutions: 1 }
    : { ...common, taskQueue: TASK_QUEUES.workflows, activities: pickActivities(all, CPU_ACTIVITIES), workflowsPath: WORKFLOWS_PATH };
}

/**
 * Runs workers of the given roles in this process until SIGINT or SIGTERM (the SDK's runtime
 * shuts every worker down on those), then releases the models.
 */
export async function runWorkers(roles: readonly WorkerRole[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const deps = dependenciesFromEnvironment(env);
  await deps.store.prepare();
  const connection = await NativeConnection.connect({ address: fromEnvironment(env, 'TEMPORAL_ADDRESS') });
  const namespace = fromEnvironment(env, 'TEMPORAL_NAMESPACE');
  try {
    const workers = await Promise.all(roles.map((role) => Worker.create(workerOptions(role, deps, connection, namespace))));
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    await deps.runtime.release();
    await connection.close();
  }
}
