/**
 * The plugin as users get it: `npm pack` builds the package, a scratch project installs the
 * tarball with `npm install`, type-checks a script against the package's declarations, and runs
 * a whole round with plain `node` (no tsx) through a worker that uses only the public exports
 * (`self-reward-images/plugin`, `self-reward-images/client`), against a real dev server.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { PYTHON, testGenerator } from '../models/testing/python.js';
import { testDetector, tinyRoundInput } from './models.js';
import { REPO_ROOT, requireBinary, TEMPORAL_CLI } from './servers.js';

const run = promisify(execFile);
const packageJson = (await import('../package.json', { with: { type: 'json' } })).default as { name: string; version: string };

/** A user's own worker and script: a worker with the plugin in both roles, a round started and awaited through the typed client. */
const USER_SCRIPT = `
import { NativeConnection, Worker } from '@temporalio/worker';
import { SelfRewardClient } from '${packageJson.name}/client';
import { selfRewardPlugin, TASK_QUEUES } from '${packageJson.name}/plugin';

const input: unknown = JSON.parse(process.argv[2] ?? '{}');
const connection = await NativeConnection.connect({ address: process.env['TEMPORAL_ADDRESS'] ?? 'localhost:7233' });
const worker = await Worker.create({ connection, taskQueue: TASK_QUEUES.workflows, plugins: [selfRewardPlugin({ role: 'all' })] });
const result = await worker.runUntil(async () => {
  const selfReward = await SelfRewardClient.connect();
  const round = await selfReward.startRound(input);
  return round.result();
});
console.log(JSON.stringify({ kept: result.dataset.kept, steps: result.training.steps, pairs: result.evaluation.pairs, report: result.report.report }));
await connection.close();
`;

let env: TestWorkflowEnvironment;
let scratch: string;
let project: string;
let input: Record<string, unknown>;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'package-'));
  const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
  input = tinyRoundInput(generator, detector, { sampling: { steps: 2 }, lora: { maxSteps: 2, batchSize: 2 } });
  env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: requireBinary(TEMPORAL_CLI) }, searchAttributes: Object.values(SEARCH_ATTRIBUTES) },
  });

  // `npm pack` runs the package's prepack script, the build into dist/.
  const { stdout } = await run('npm', ['pack', '--pack-destination', scratch, '--silent'], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
  const tarball = join(scratch, stdout.trim().split('\n').at(-1)!);
  project = join(scratch, 'project');
  await mkdir(project);
  await writeFile(
    join(project, 'package.json'),
    JSON.stringify({
      name: 'user-project',
      private: true,
      type: 'module',
      dependencies: { [packageJson.name]: `file:${tarball}`, '@temporalio/worker': '1.24.0' },
    }),
  );
  // A CPU machine: onnxruntime-node's CUDA provider is not fetched.
  await writeFile(join(project, '.npmrc'), 'onnxruntime-node-install=skip\n');
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--silent'], { cwd: project, maxBuffer: 16 << 20, timeout: 600_000 });
});

afterAll(async () => {
  await env?.teardown();
});

describe('the package', () => {
  it('ships the built JavaScript with declarations and the trainer, and no TypeScript sources', async () => {
    const installed = join(project, 'node_modules', packageJson.name);
    const files = (await readdir(installed, { recursive: true })).map(String);
    expect(files).toContain(join('dist', 'workers', 'index.js'));
    expect(files).toContain(join('dist', 'client', 'index.d.ts'));
    expect(files).toContain(join('python', 'loratrain', '__main__.py'));
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => f.includes('.test.'))).toEqual([]);
    expect(existsSync(join(project, 'node_modules', '.bin', 'selfreward'))).toBe(true);
  });

  it("type-checks a user's script against the public exports", async () => {
    await writeFile(join(project, 'round.ts'), USER_SCRIPT);
    await writeFile(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: [] },
        files: ['round.ts'],
      }),
    );
    await run(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { cwd: project });
  });

  it('runs a round with plain node through a worker that uses only the public exports', async () => {
    // The same script as JavaScript: what `tsc` emits for it, minus the one type annotation.
    await writeFile(join(project, 'round.mjs'), USER_SCRIPT.replace('const input: unknown', 'const input'));
    const store = join(scratch, 'store');
    const { stdout } = await run(process.execPath, [join(project, 'round.mjs'), JSON.stringify(input)], {
      cwd: project,
      timeout: 600_000,
      maxBuffer: 64 << 20,
      env: {
        PATH: process.env['PATH'],
        TEMPORAL_ADDRESS: env.address,
        SELF_REWARD_STORE: store,
        SELF_REWARD_WORK_DIR: join(scratch, 'work'),
        SELF_REWARD_THREADS: '1',
        // The package ships the trainer; the Python that runs it is the user's (here, the project venv's).
        SELF_REWARD_TRAINER: `${PYTHON} -m loratrain`,
        OMP_NUM_THREADS: '1',
      },
    });
    const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as { kept: number; steps: number; pairs: number; report: string };
    expect(summary).toMatchObject({ steps: 2, pairs: 2 });
    expect(summary.kept).toBeGreaterThan(0);
    expect(existsSync(join(store, ...summary.report.split('/')))).toBe(true);
  });
});
