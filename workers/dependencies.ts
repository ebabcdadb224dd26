/** What the activities need, from a worker's environment (each variable's meaning and default: config/environment.ts). */
import { existsSync } from 'node:fs';
import { availableParallelism, networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';

import { Runtime } from '@temporalio/worker';

import type { ActivityDependencies } from '../activities/dependencies.js';
import { ModelRuntime } from '../activities/runtime.js';
import { SampleCache } from '../activities/sampleCache.js';
import { fromEnvironment } from '../config/environment.js';
import { PACKAGE_ROOT, VENV_BIN } from '../config/paths.js';
import { createMetrics, type SelfRewardMetrics } from '../observability/metrics.js';
import { MeteredStore } from '../observability/store.js';
import { storeFromEnvironment } from '../store/config.js';

/** The trainer unless SELF_REWARD_TRAINER says otherwise: `python -m loratrain` from the package, with the project venv's Python when there is one. */
function defaultTrainer(): string[] {
  const venvPython = join(VENV_BIN, 'python');
  return [existsSync(venvPython) ? venvPython : 'python3', '-m', 'loratrain'];
}

/** This host's first non-internal IPv4 address, where other hosts can reach it; 127.0.0.1 when it has none. */
function hostAddress(): string {
  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal);
  return external?.address ?? '127.0.0.1';
}

/** The activities' metrics, on the meter of the worker process's Temporal runtime (exported when it has an endpoint). */
export function workerMetrics(): SelfRewardMetrics {
  return createMetrics(() => Runtime.instance().metricMeter);
}

/**
 * Activity dependencies from the environment: SELF_REWARD_DEVICE, SELF_REWARD_WORK_DIR,
 * SELF_REWARD_TRAINER, SELF_REWARD_TRAINER_DEVICES, SELF_REWARD_TRAINER_ADDRESS, SELF_REWARD_THREADS, SELF_REWARD_MODEL_LANES, SELF_REWARD_SAMPLE_CACHE_MB and the store's settings
 * (see store/config.ts).
 */
export function dependenciesFromEnvironment(env: NodeJS.ProcessEnv = process.env): ActivityDependencies {
  const device = fromEnvironment(env, 'SELF_REWARD_DEVICE');
  const threadsText = fromEnvironment(env, 'SELF_REWARD_THREADS');
  const threads = threadsText === undefined ? availableParallelism() : Number(threadsText);
  const lanesText = fromEnvironment(env, 'SELF_REWARD_MODEL_LANES');
  const trainer =
    fromEnvironment(env, 'SELF_REWARD_TRAINER')
      ?.split(' ')
      .filter((part) => part !== '') ?? defaultTrainer();
  const python = join(PACKAGE_ROOT, 'python');
  // A trainer of one process per GPU sees the GPUs it is given instead of the worker's one.
  const trainerDevices = fromEnvironment(env, 'SELF_REWARD_TRAINER_DEVICES');
  const metrics = workerMetrics();
  const workDir = resolve(fromEnvironment(env, 'SELF_REWARD_WORK_DIR'));
  const cacheBytes = Number(fromEnvironment(env, 'SELF_REWARD_SAMPLE_CACHE_MB')) * 2 ** 20;
  return {
    store: new MeteredStore(storeFromEnvironment(env), metrics),
    runtime: new ModelRuntime(device, threads, lanesText === undefined ? null : Number(lanesText), (line) => Runtime.instance().logger.info(line)),
    trainer: {
      command: trainer,
      cwd: python,
      env: { PYTHONPATH: python, ...(trainerDevices === undefined ? {} : { CUDA_VISIBLE_DEVICES: trainerDevices }) },
      stopGraceMs: 60_000,
      address: fromEnvironment(env, 'SELF_REWARD_TRAINER_ADDRESS') ?? hostAddress(),
    },
    device,
    threads,
    workDir,
    allowedPaths: fromEnvironment(env, 'SELF_REWARD_ALLOWED_PATHS')?.split(':') ?? null,
    metrics,
    ...(cacheBytes === 0 ? {} : { sampleCache: new SampleCache(join(workDir, 'samples'), cacheBytes) }),
  };
}
