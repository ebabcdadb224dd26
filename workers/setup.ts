/** What the worker entry points share: workers by role, on a connection from the environment. */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';

import type { ActivityDependencies } from '../activities/dependencies.js';
import { fromEnvironment } from '../config/environment.js';
import { temporalConnection } from '../config/temporalConnection.js';
import { TASK_QUEUES, type WorkerRole } from '../contract/workers.js';
import { dependenciesFromEnvironment } from './dependencies.js';
import { selfRewardPlugin } from './plugin.js';

/** A worker of one role, set up by the plugin as users' own workers are. */
export function workerOptions(role: WorkerRole | 'all', deps: ActivityDependencies, connection: NativeConnection, namespace: string): WorkerOptions {
  return {
    connection,
    namespace,
    taskQueue: role === 'gpu' ? TASK_QUEUES.gpu : TASK_QUEUES.workflows,
    plugins: [selfRewardPlugin({ role, dependencies: deps })],
  };
}

/**
 * Runs a worker of the given role in this process until SIGINT or SIGTERM (the SDK's runtime
 * shuts every worker down on those), then releases the models.
 */
export async function runWorker(role: WorkerRole | 'all', env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const deps = dependenciesFromEnvironment(env);
  await deps.store.prepare();
  const connection = await NativeConnection.connect(temporalConnection(env));
  try {
    const worker = await Worker.create(workerOptions(role, deps, connection, fromEnvironment(env, 'TEMPORAL_NAMESPACE')));
    await worker.run();
  } finally {
    await deps.runtime.release();
    await connection.close();
  }
}
