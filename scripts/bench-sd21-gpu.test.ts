/** The GPU benchmark script's parts that need no GPU: its plan and its refusals before any work. */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { REPO_ROOT } from '../models/testing/python.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'bench-sd21-gpu.sh');
const scratch = mkdtempSync(join(tmpdir(), 'bench-sd21-gpu-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function script(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync('bash', [SCRIPT, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
}

/** A PATH with the tools the script needs and, when given, a stand-in nvidia-smi. */
function pathWith(nvidiaSmi?: string): string {
  const bin = mkdtempSync(join(scratch, 'bin-'));
  if (nvidiaSmi) {
    writeFileSync(join(bin, 'nvidia-smi'), `#!/usr/bin/env bash\n${nvidiaSmi}\n`);
    chmodSync(join(bin, 'nvidia-smi'), 0o755);
  }
  return `${bin}:/usr/bin:/bin`;
}

describe('scripts/bench-sd21-gpu.sh', () => {
  it('plans ours and diffusers for every precision and batch size, fp16 from the same weights', () => {
    const result = script(['--plan'], { SD21_BATCHES: '1 4', SD21_PRECISIONS: 'fp32 fp16', SD21_OUT: 'build/x' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('512x512, 20 steps, guidance 7.5');
    expect(result.stdout).toContain('parity.sd21_random');
    expect(result.stdout).toContain('loratrain.export_onnx --generator');
    expect(result.stdout).toContain('--fp16 --device cuda');
    const runs = result.stdout.split('\n').filter((line) => line.startsWith('run:'));
    expect(runs).toHaveLength(8);
    expect(runs.filter((line) => line.includes('--side typescript --json --device cuda --generator build/x/fp16'))).toHaveLength(2);
    expect(runs.filter((line) => line.includes('--dtype float16 --generator build/x/fp32'))).toHaveLength(2);
  });

  it('refuses an unknown argument', () => {
    const result = script(['--now'], {});
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/unknown argument --now/);
  });

  it('stops before any work when there is no GPU driver', () => {
    const result = script([], { PATH: pathWith() });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/nvidia-smi not found: this benchmark needs a CUDA GPU/);
    expect(result.stdout).toBe('');
  });

  it('stops when the driver lists no GPU', () => {
    const result = script([], { PATH: pathWith('echo "No devices were found"') });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/nvidia-smi lists no GPU/);
  });

  it('stops, naming the fix, when onnxruntime-node was installed without its CUDA provider', () => {
    const result = script([], { PATH: pathWith('echo "GPU 0: Stand-in (UUID: GPU-0)"') });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/onnxruntime-node has no CUDA provider .* ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci/);
  });
});
