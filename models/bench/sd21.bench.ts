/**
 * `npm run bench:sd21`: Stable Diffusion 2.1-base's full architecture with random weights
 * (`python -m parity.sd21_random`, built into build/sd21-base-random the first time, exported
 * by the product's exporter), sampled on this machine's CPU by the TypeScript sampler
 * (onnxruntime-node) and by diffusers (PyTorch) on the same work and threads.
 *
 * Each side runs in a process of its own (so its peak resident memory is its own), and the
 * sides alternate, ours first, `--rounds` times each, because other processes may share the
 * CPU; the machine's load average is printed beside each run. Prints a table and, last, one
 * JSON line. Options (models/bench/sd21Args.ts): --generator DIR --size PX (256) --steps N (4)
 * --batch N (1) --guidance G (7.5) --threads T (2) --runs N (2 timed calls a process, after
 * one warm-up) --rounds N (2).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { PYTHON, REPO_ROOT } from '../testing/python.js';
import { parseSd21Args, type Sd21BenchOptions } from './sd21Args.js';

const run = promisify(execFile);
const PYTHON_DIR = join(REPO_ROOT, 'python');
const HOUR_MS = 3_600_000;

type Side = 'typescript' | 'diffusers';

interface SideResult {
  readonly side: Side;
  readonly seconds_per_image: number;
  readonly load_seconds: number;
  readonly peak_rss_mb: number;
}

interface RunRecord extends SideResult {
  readonly round: number;
  readonly loadavg_before: string;
  readonly loadavg_after: string;
}

async function loadavg(): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8').catch(() => 'n/a')).trim().split(' ').slice(0, 3).join(' ');
}

function lastJsonLine(stdout: string, what: string): SideResult {
  const line = stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as SideResult;
  } catch {
    throw new Error(`${what}: no JSON result line in its output:\n${stdout}`);
  }
}

function pythonEnv(threads: number): NodeJS.ProcessEnv {
  return { ...process.env, PYTHONPATH: PYTHON_DIR, OMP_NUM_THREADS: String(threads) };
}

async function ensureGenerator(options: Sd21BenchOptions): Promise<void> {
  if (existsSync(join(options.generator, 'unet', 'model.onnx'))) return;
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} not found: run scripts/setup-python.sh first`);
  if (existsSync(options.generator)) {
    throw new Error(`${options.generator} exists but holds no unet/model.onnx: remove it, and it is built again`);
  }
  console.log(`building ${options.generator} (SD 2.1-base architecture, random weights, ONNX export: minutes and about 12 GB of RAM)`);
  const started = performance.now();
  const { stdout } = await run(PYTHON, ['-m', 'parity.sd21_random', options.generator, '--threads', String(options.threads)], {
    cwd: PYTHON_DIR,
    env: pythonEnv(options.threads),
    timeout: HOUR_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  console.log(stdout.trim().split('\n').at(-1));
  console.log(`built in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

function workArgs(options: Sd21BenchOptions): string[] {
  const { generator, batch, steps, guidance, size, runs, threads } = options;
  return [
    '--generator',
    generator,
    '--batch',
    String(batch),
    '--steps',
    String(steps),
    '--guidance',
    String(guidance),
    '--size',
    String(size),
    '--runs',
    String(runs),
    '--threads',
    String(threads),
  ];
}

async function runSide(side: Side, options: Sd21BenchOptions): Promise<SideResult> {
  const common = { timeout: HOUR_MS, maxBuffer: 64 * 1024 * 1024 };
  if (side === 'typescript') {
    const script = join(REPO_ROOT, 'models', 'bench', 'sampler.bench.ts');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', script, '--side', 'typescript', '--json', ...workArgs(options)], {
      ...common,
      cwd: REPO_ROOT,
    });
    return lastJsonLine(stdout, 'TypeScript sampler');
  }
  const { stdout } = await run(PYTHON, ['-m', 'parity.sampler_bench', ...workArgs(options)], { ...common, cwd: PYTHON_DIR, env: pythonEnv(options.threads) });
  return lastJsonLine(stdout, 'diffusers');
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const options = parseSd21Args(process.argv.slice(2), REPO_ROOT);
await ensureGenerator(options);
const { size, steps, batch, guidance, threads, runs, rounds } = options;
console.log(
  `work: ${size}x${size}, ${steps} steps, batch ${batch}, guidance ${guidance}, ${threads} CPU thread(s) each side, ${runs} timed call(s) a process after one warm-up`,
);
console.log('round  side        s/image  load s  peak RSS MB  loadavg before -> after');
const records: RunRecord[] = [];
for (let round = 1; round <= rounds; round++) {
  for (const side of ['typescript', 'diffusers'] as const) {
    const before = await loadavg();
    const result = await runSide(side, options);
    const after = await loadavg();
    records.push({ ...result, side, round, loadavg_before: before, loadavg_after: after });
    console.log(
      `${String(round).padEnd(6)} ${side.padEnd(11)} ${result.seconds_per_image.toFixed(2).padStart(7)}  ${result.load_seconds.toFixed(1).padStart(6)}  ${String(result.peak_rss_mb).padStart(11)}  ${before} -> ${after}`,
    );
  }
}
const summary = (side: Side) => {
  const mine = records.filter((r) => r.side === side);
  return {
    seconds_per_image_median: Number(median(mine.map((r) => r.seconds_per_image)).toFixed(3)),
    seconds_per_image_best: Number(Math.min(...mine.map((r) => r.seconds_per_image)).toFixed(3)),
    peak_rss_mb: Math.max(...mine.map((r) => r.peak_rss_mb)),
  };
};
const ours = summary('typescript');
const theirs = summary('diffusers');
const speedup = theirs.seconds_per_image_median / ours.seconds_per_image_median;
console.log(`diffusers s/image ÷ ours (median): ${speedup.toFixed(2)} (above 1: ours is faster)`);
console.log(
  JSON.stringify({
    generator: options.generator,
    work: { size, steps, batch, guidance, threads, runs, rounds },
    typescript: ours,
    diffusers: theirs,
    speedup_median: Number(speedup.toFixed(3)),
    runs: records,
  }),
);
