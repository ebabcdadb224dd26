/** The worker entry points as processes: they connect, poll, and shut down gracefully on SIGTERM. */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REPO_ROOT, requireBinary, TEMPORAL_CLI } from './servers.js';

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: requireBinary(TEMPORAL_CLI) } } });
});

afterAll(async () => {
  await env?.teardown();
});

describe.each(['all-in-one', 'cpu', 'gpu'])('workers/%s', (name) => {
  it('runs until SIGTERM, then stops cleanly', async () => {
    const scratch = await mkdtemp(join(tmpdir(), `worker-${name}-`));
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'workers', `${name}.ts`)], {
      cwd: REPO_ROOT,
      env: { ...process.env, TEMPORAL_ADDRESS: env.address, SELF_REWARD_STORE: join(scratch, 'store'), SELF_REWARD_WORK_DIR: join(scratch, 'work') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    const running = new Promise<void>((done) => {
      const watch = (chunk: Buffer) => {
        log += chunk.toString();
        if (log.includes("state: 'RUNNING'")) done();
      };
      child.stdout.on('data', watch);
      child.stderr.on('data', watch);
    });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    await Promise.race([running, exited]);
    expect(child.exitCode, log).toBeNull();
    child.kill('SIGTERM');
    expect(await exited, log).toBe(0);
  });
});
