/** The real stack that end-to-end tests run rounds on: a local dev server, the project's trainer, workers set up by the plugin. */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';

import type { ActivityDependencies } from '../activities/dependencies.js';
import { ModelRuntime } from '../activities/runtime.js';
import { SampleCache } from '../activities/sampleCache.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { PYTHON } from '../models/testing/python.js';
import { LocalFolderStore } from '../store/local.js';
import { workerOptions } from '../workers/setup.js';
import { HISTORIES, REPO_ROOT, requireBinary, TEMPORAL_CLI } from './servers.js';
import { workerMetrics } from '../workers/dependencies.js';

/** A local dev server (the venv's `temporal` CLI) with the plugin's search attributes registered. */
export function localTemporal(ui?: { readonly uiPort: number }): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: requireBinary(TEMPORAL_CLI) },
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      ...(ui === undefined ? {} : { ui: true, uiPort: ui.uiPort }),
    },
  });
}

/**
 * Activity dependencies in `scratch`: a local store, one thread per model graph, the project's
 * trainer on one thread, and a sample cache in the work folder as a worker's environment gives.
 */
export function testDependencies(scratch: string): ActivityDependencies {
  return {
    store: new LocalFolderStore(join(scratch, 'store')),
    runtime: new ModelRuntime('cpu', 1),
    trainer: {
      command: [PYTHON, '-m', 'loratrain'],
      cwd: join(REPO_ROOT, 'python'),
      env: { PYTHONPATH: join(REPO_ROOT, 'python'), OMP_NUM_THREADS: '1' },
      stopGraceMs: 30_000,
      address: '127.0.0.1',
    },
    device: 'cpu',
    threads: 1,
    workDir: join(scratch, 'work'),
    allowedPaths: null,
    metrics: workerMetrics(),
    sampleCache: new SampleCache(join(scratch, 'work', 'samples'), 64 << 20),
  };
}

/** Runs `run` while a CPU and a GPU worker, as the plugin sets them up, serve the environment. */
export async function withRoundWorkers<T>(env: TestWorkflowEnvironment, deps: ActivityDependencies, run: () => Promise<T>): Promise<T> {
  const [cpu, gpu] = await Promise.all(
    (['cpu', 'gpu'] as const).map((role) => Worker.create({ ...workerOptions(role, deps, env.nativeConnection, 'default'), shutdownGraceTime: '5s' })),
  );
  return cpu!.runUntil(gpu!.runUntil(run));
}

/**
 * With RECORD_HISTORIES=1, keeps the history for the replay test as exported by the CLI, in
 * test/histories/<workflow id>.json (replay needs the id: child workflow ids derive from it).
 * Worker identities and sticky queue names hold the host name: they are replaced.
 */
export async function recordHistory(env: TestWorkflowEnvironment, workflowId: string): Promise<void> {
  if (process.env['RECORD_HISTORIES'] !== '1') return;
  const { stdout } = await promisify(execFile)(TEMPORAL_CLI, ['workflow', 'show', '--workflow-id', workflowId, '--address', env.address, '--output', 'json'], {
    maxBuffer: 64 << 20,
  });
  await mkdir(HISTORIES, { recursive: true });
  await writeFile(join(HISTORIES, `${workflowId}.json`), stdout.replace(/"(identity|name)": "\d+@[^"]*"/g, '"$1": "test-worker"'));
}
