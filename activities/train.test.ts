/**
 * The train activity's control of its child process, with a stand-in that speaks the trainer's
 * protocol (the real trainer's own tests cover training; here it is process control).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import { validateRoundInput, type RoundInput } from '../config/round.js';
import { LocalFolderStore } from '../store/local.js';
import { putJson } from '../store/store.js';
import { runActivity } from '../test/activity.js';
import type { ActivityDependencies } from './dependencies.js';
import { artifactKeys, roundRoot } from './keys.js';
import { ModelRuntime } from './runtime.js';
import { createTrainLora, trainerArguments, trainerEnvironment } from './train.js';
import type { StageProgress } from './types.js';

const STANDIN = resolve(import.meta.dirname, '..', 'test', 'fixtures', 'protocolTrainer.mjs');

function roundInput(): RoundInput {
  const result = validateRoundInput({
    generator: { base: '/models/generator' },
    judge: { detector: '/models/detector', clip: '/models/clip' },
    prompts: [{ className: 'circle', text: 'a red circle' }],
    evaluation: { prompts: [{ className: 'circle', text: 'a blue circle' }] },
    lora: { maxSteps: 3, rank: 8 },
  });
  if (!result.ok) throw new Error('bad test input');
  return result.value;
}

async function setup(mode: string) {
  const scratch = await mkdtemp(join(tmpdir(), 'train-activity-'));
  const store = new LocalFolderStore(join(scratch, 'store'));
  const deps: ActivityDependencies = {
    store,
    runtime: new ModelRuntime('cpu'),
    trainer: { command: [process.execPath, STANDIN], cwd: scratch, env: { STANDIN_MODE: mode }, stopGraceMs: 2000 },
    device: 'cpu',
    workDir: join(scratch, 'work'),
  };
  const root = roundRoot('wf/1', 1);
  await store.put(artifactKeys.datasetImage(root, 0), 'png');
  await store.put(artifactKeys.datasetMetadata(root), '{"file_name": "00000.png", "text": "a red circle"}\n');
  await putJson(store, artifactKeys.curateManifest(root), { manifest: artifactKeys.curateManifest(root), dataset: artifactKeys.dataset(root), kept: 1, dropped: 0, perClass: {} });
  const output = join(deps.workDir, ...root.split('/'), 'train', 'output');
  return { deps, root, store, output, train: createTrainLora(deps) };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('trainLora', () => {
  it('turns progress lines into heartbeats, uploads the outputs, then the manifest, and returns it on a retry', async () => {
    const { root, store, train } = await setup('finish');
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const result = await runActivity(env, train, { root, input: roundInput() });
    expect(result).toMatchObject({ lora: artifactKeys.lora(root), steps: 3, finalLoss: 0.25 });
    expect(beats).toContainEqual({ stage: 'train', trainerStep: 2, trainerSteps: 3, loss: 0.5 });
    expect(await store.list(artifactKeys.lora(root))).toEqual(
      ['metrics.json', 'pytorch_lora_weights.safetensors', 'unet/model.onnx'].map((f) => `${artifactKeys.lora(root)}${f}`),
    );
    expect(await store.exists(artifactKeys.trainManifest(root))).toBe(true);
    // The manifest is found: no second training.
    const again = new MockActivityEnvironment();
    const started: unknown[] = [];
    again.on('heartbeat', (d: unknown) => started.push(d));
    expect(await runActivity(again, train, { root, input: roundInput() })).toMatchObject(result);
    expect(started).toEqual([]);
  });

  it('stops the running trainer on cancellation and publishes nothing', async () => {
    const { root, store, output, train } = await setup('run');
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: StageProgress) => {
      if (d.trainerStep !== undefined) env.cancel();
    });
    const error = await runActivity(env, train, { root, input: roundInput() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledFailure);
    const pid = Number(await readFile(join(output, 'pid'), 'utf8'));
    expect(isAlive(pid)).toBe(false);
    expect(await store.list(artifactKeys.lora(root))).toEqual([]);
    expect(existsSync(store.locate(artifactKeys.trainManifest(root)))).toBe(false);
  });

  it('starts no trainer when cancelled before it starts', async () => {
    const { root, output, train } = await setup('run');
    const env = new MockActivityEnvironment();
    env.once('heartbeat', () => env.cancel());
    expect(await runActivity(env, train, { root, input: roundInput() }).catch((e: unknown) => e)).toBeInstanceOf(CancelledFailure);
    expect(existsSync(join(output, 'pid'))).toBe(false);
  });

  it("stops a trainer orphaned by a killed worker before the retry trains into the same folder", async () => {
    const { root, output, train } = await setup('finish');
    await mkdir(output, { recursive: true });
    const orphan = spawn(process.execPath, [STANDIN, '--output', output], { env: { ...process.env, STANDIN_MODE: 'run' }, stdio: ['ignore', 'pipe', 'ignore'] });
    await writeFile(join(output, 'trainer.pid'), String(orphan.pid));
    const gone = new Promise((done) => orphan.once('exit', (code) => done(code)));
    // Its first event comes after it has set up its SIGTERM handling.
    await new Promise((started) => orphan.stdout.once('data', started));
    expect(await runActivity(new MockActivityEnvironment(), train, { root, input: roundInput() })).toMatchObject({ steps: 3 });
    expect(await gone).toBe(143);
    expect(existsSync(join(output, 'trainer.pid'))).toBe(false);
  });

  it('fails without retry when the trainer refuses its input, with its message', async () => {
    const { root, train } = await setup('bad-input');
    const error = await runActivity(new MockActivityEnvironment(), train, { root, input: roundInput() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toMatchObject({ type: 'BadTrainingInput', nonRetryable: true, message: expect.stringContaining('metadata.jsonl line 3') });
  });

  it('passes the LoRA settings, resumes from the latest checkpoint and pins the device', () => {
    const args = trainerArguments(roundInput().lora, { generator: 'g', dataset: 'd', output: 'o' }, 'cuda:3');
    expect(args.join(' ')).toContain('--rank 8');
    expect(args.join(' ')).toContain('--max-steps 3');
    expect(args.join(' ')).toContain('--resume-from latest');
    expect(args.join(' ')).toContain('--device cuda');
    expect(trainerEnvironment('cuda:3')).toEqual({ CUDA_VISIBLE_DEVICES: '3' });
    expect(trainerEnvironment('cpu')).toEqual({ CUDA_VISIBLE_DEVICES: '' });
  });
});
