/** What the worker entry points share: workers by role, on a connection from the environment. */
import { NativeConnection, Runtime, Worker, type LogLevel, type WorkerOptions } from '@temporalio/worker';

import type { ActivityDependencies } from '../activities/dependencies.js';
import { EnvironmentError, fromEnvironment } from '../config/environment.js';
import { temporalConnection } from '../config/temporalConnection.js';
import { tracingFromEnvironment } from '../config/tracing.js';
import { ACTIVITY_ROLES, TASK_QUEUES, type WorkerRole } from '../contract/workers.js';
import { initializeCounters } from '../observability/metrics.js';
import { installTelemetry, type TelemetrySettings } from '../observability/runtime.js';
import { startTracing, type WorkerTracing } from '../observability/tracing.js';
import { dependenciesFromEnvironment } from './dependencies.js';
import { selfRewardPlugin } from './plugin.js';

/** A worker of one role, set up by the plugin as users' own workers are. */
export function workerOptions(
  role: WorkerRole | 'all',
  deps: ActivityDependencies,
  connection: NativeConnection,
  namespace: string,
  shutdownGraceSeconds = 30,
  tracing?: WorkerTracing,
): WorkerOptions {
  return {
    connection,
    namespace,
    taskQueue: role === 'gpu' ? TASK_QUEUES.gpu : TASK_QUEUES.workflows,
    shutdownGraceTime: `${shutdownGraceSeconds}s`,
    plugins: [selfRewardPlugin({ role, dependencies: deps, tracing })],
  };
}

/** How this worker process logs and exports metrics (SELF_REWARD_METRICS_ADDRESS, SELF_REWARD_LOG_FORMAT, SELF_REWARD_LOG_LEVEL). */
export function telemetryFromEnvironment(env: NodeJS.ProcessEnv, role: WorkerRole | 'all'): TelemetrySettings {
  return {
    metricsAddress: fromEnvironment(env, 'SELF_REWARD_METRICS_ADDRESS') ?? null,
    logFormat: fromEnvironment(env, 'SELF_REWARD_LOG_FORMAT') === 'json' ? 'json' : 'text',
    logLevel: fromEnvironment(env, 'SELF_REWARD_LOG_LEVEL') as LogLevel,
    role,
    device: fromEnvironment(env, 'SELF_REWARD_DEVICE'),
  };
}

/** A worker that cannot start: the message says which part failed and what to set. */
export class WorkerStartError extends Error {
  override name = 'WorkerStartError';
}

/** Runs a start-up step; a failure becomes a WorkerStartError naming the step, its own message kept short. */
async function starting<T>(step: string, run: () => Promise<T> | T): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof EnvironmentError) throw new WorkerStartError(error.message, { cause: error });
    throw new WorkerStartError(`${step}: ${(error as Error).message.split('\n')[0]!.slice(0, 300)}`, { cause: error });
  }
}

/**
 * Runs a worker of the given role in this process until SIGINT or SIGTERM (the SDK's runtime
 * shuts every worker down on those), then exports the spans it still holds (with
 * OTEL_EXPORTER_OTLP_ENDPOINT set) and releases the models. A start that fails throws a
 * WorkerStartError naming what failed.
 */
export async function runWorker(role: WorkerRole | 'all', env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const telemetry = await starting('worker settings', () => telemetryFromEnvironment(env, role));
  const tracingSettings = await starting('worker settings', () => tracingFromEnvironment(env, `selfreward-worker-${role}`));
  const deps = await starting('worker settings', () => dependenciesFromEnvironment(env));
  const shutdownGraceSeconds = await starting('worker settings', () => Number(fromEnvironment(env, 'SELF_REWARD_SHUTDOWN_GRACE_SECONDS')));
  await starting(`the artifact store ${deps.store.location}`, () => deps.store.prepare());
  await starting(telemetry.metricsAddress === null ? 'logging' : `the metrics endpoint ${telemetry.metricsAddress}`, () => installTelemetry(telemetry));
  initializeCounters(
    deps.metrics,
    Object.entries(ACTIVITY_ROLES).flatMap(([activity, served]) => (role === 'all' || served === role ? [activity] : [])),
  );
  const settings = await starting('Temporal connection settings', () => temporalConnection(env));
  const connection = await starting(`cannot connect to Temporal at ${settings.address} (check TEMPORAL_ADDRESS, TEMPORAL_TLS_*, TEMPORAL_API_KEY)`, () =>
    NativeConnection.connect(settings),
  );
  const namespace = fromEnvironment(env, 'TEMPORAL_NAMESPACE');
  const tracing = tracingSettings === null ? undefined : startTracing(tracingSettings, (message) => Runtime.instance().logger.warn(message));
  try {
    const worker = await starting(`cannot start a worker in namespace ${namespace} (check TEMPORAL_NAMESPACE)`, () =>
      Worker.create(workerOptions(role, deps, connection, namespace, shutdownGraceSeconds, tracing)),
    );
    await worker.run();
  } finally {
    // The spans of the last activities and of finished workflows are still buffered.
    await tracing?.shutdown();
    await deps.runtime.release();
    await connection.close();
  }
}

/** What the worker entry points run: the role's worker, and a failed start as one line and exit code 2. */
export async function workerMain(role: WorkerRole | 'all'): Promise<void> {
  try {
    await runWorker(role);
  } catch (error) {
    if (!(error instanceof WorkerStartError)) throw error;
    console.error(`worker: ${error.message}`);
    process.exitCode = 2;
  }
}
