/**
 * A worker's thread count, which sizes its model lanes and its trainer: SELF_REWARD_THREADS, else
 * the cores its process may use, so a worker pinned to cores of its own (`taskset`, a compose
 * service's `cpuset`) fits them without being told.
 */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

import { REPO_ROOT } from '../test/servers.js';

/** The thread count of a worker process started with `environment`, pinned to `cpus`. */
async function workerThreads(cpus: string, environment: Readonly<Record<string, string>> = {}): Promise<number> {
  const store = await mkdtemp(join(tmpdir(), 'threads-store-'));
  const module = pathToFileURL(join(REPO_ROOT, 'workers', 'dependencies.ts')).href;
  const script = [
    `const { dependenciesFromEnvironment } = await import(${JSON.stringify(module)});`,
    `console.log(dependenciesFromEnvironment({ SELF_REWARD_STORE: ${JSON.stringify(store)}, ...${JSON.stringify(environment)} }).threads);`,
    'process.exit(0);',
  ].join('\n');
  const { stdout } = await promisify(execFile)('taskset', ['--cpu-list', cpus, process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: REPO_ROOT,
  });
  return Number(stdout.trim());
}

describe('a worker pinned to cores', () => {
  it('runs its model work and its trainer on as many threads as it has cores', async () => {
    expect(await workerThreads('0')).toBe(1);
    if (availableParallelism() >= 2) expect(await workerThreads('0,1')).toBe(2);
  });

  it('keeps the thread count SELF_REWARD_THREADS gives it', async () => {
    expect(await workerThreads('0', { SELF_REWARD_THREADS: '3' })).toBe(3);
  });
});
