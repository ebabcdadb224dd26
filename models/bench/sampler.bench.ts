/**
 * `npm run bench:sampler`: the TypeScript sampler (onnxruntime-node) against diffusers'
 * StableDiffusionPipeline (PyTorch) on the same generator and work — RUNS calls of BATCH
 * prompts, STEPS steps, classifier-free guidance, VAE decode — each after one warm-up
 * call, as images per second and their ratio. Both sides get the same CPU threads: ours as
 * a worker's SamplerPool uses them (--lanes N: that many lanes instead of its default).
 * Options: --generator DIR (default: the shapes pack's, else a random-weight one of its
 * architecture) --batch N --steps N --guidance G --size PX --runs N --threads T
 * --side both|typescript|diffusers (one side alone, for a process of its own whose peak
 * memory is that side's) --device cpu|cuda[:N] (both sides) --dtype float32|float16 (diffusers'
 * weights; ours computes in whatever the ONNX graphs hold) --json (one JSON line a side: seconds
 * per image, load seconds, peak resident memory).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { SamplerPool } from '../samplerPool.js';
import { runPythonModule, testGenerator } from '../testing/python.js';

const { values } = parseArgs({
  options: {
    generator: { type: 'string' },
    batch: { type: 'string', default: '4' },
    steps: { type: 'string', default: '20' },
    guidance: { type: 'string', default: '7.5' },
    size: { type: 'string', default: '64' },
    runs: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
    lanes: { type: 'string' },
    side: { type: 'string', default: 'both' },
    device: { type: 'string', default: 'cpu' },
    dtype: { type: 'string', default: 'float32' },
    json: { type: 'boolean', default: false },
  },
});
const side = values.side;
if (side !== 'both' && side !== 'typescript' && side !== 'diffusers') throw new Error(`--side must be both, typescript or diffusers, got ${side}`);
const batch = Number(values.batch);
const steps = Number(values.steps);
const guidanceScale = Number(values.guidance);
const size = Number(values.size);
const runs = Number(values.runs);
const threads = Number(values.threads);

const scratch = await mkdtemp(join(tmpdir(), 'bench-sampler-'));
try {
  const folder = values.generator ? resolve(values.generator) : await testGenerator(scratch);
  const pythonArgs = [
    '--generator',
    folder,
    '--batch',
    String(batch),
    '--steps',
    String(steps),
    '--guidance',
    String(guidanceScale),
    '--size',
    String(size),
    '--runs',
    String(runs),
    '--threads',
    String(threads),
    '--device',
    values.device,
    '--dtype',
    values.dtype,
  ];
  let python: { images: number; images_per_second: number } | undefined;
  if (side !== 'typescript') {
    const pythonOut = await runPythonModule('parity.sampler_bench', pythonArgs);
    python = JSON.parse(pythonOut.trim().split('\n').at(-1) ?? '') as { images: number; images_per_second: number };
    if (values.json) console.log(JSON.stringify({ side: 'diffusers', ...python }));
  }
  const ours = side === 'diffusers' ? undefined : await timeTypescript(folder);
  const tsRate = ours?.imagesPerSecond;
  const lanesUsed = ours?.lanes;
  if (!values.json) {
    console.log(`generator: ${folder}`);
    console.log(`work: ${runs} runs x ${batch} images, ${steps} steps, guidance ${guidanceScale}, ${size}x${size}, ${threads} CPU thread(s) each side`);
    if (lanesUsed !== undefined) console.log(`TypeScript sampler lanes: ${lanesUsed} of ${Math.max(1, Math.floor(threads / lanesUsed))} thread(s) each`);
    if (tsRate !== undefined) console.log(`TypeScript sampler (onnxruntime-node): ${tsRate.toFixed(2)} images/s`);
    if (python) console.log(`diffusers pipeline (PyTorch):          ${python.images_per_second.toFixed(2)} images/s`);
    if (tsRate !== undefined && python) console.log(`ratio TypeScript / diffusers:          ${(tsRate / python.images_per_second).toFixed(2)}`);
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}

/** Our sampler on `folder`: images per second after a warm-up call, and its lanes (with --json, one line of figures). */
async function timeTypescript(folder: string): Promise<{ imagesPerSecond: number; lanes: number }> {
  const loading = performance.now();
  const pool = await SamplerPool.load(
    { base: folder },
    { threads, device: values.device, ...(values.lanes === undefined ? {} : { lanes: Number(values.lanes) }) },
  );
  const loadSeconds = (performance.now() - loading) / 1000;
  try {
    const prompts = Array.from({ length: batch }, (_, i) => `${i + 1} red circles`);
    const call = (seed: number) => pool.sample({ prompts, seeds: prompts.map((_, i) => seed + i), steps, guidanceScale, width: size, height: size });
    await call(0);
    const started = performance.now();
    for (let run = 0; run < runs; run++) await call(1000 * (run + 1));
    const seconds = (performance.now() - started) / 1000;
    const images = runs * batch;
    if (values.json) {
      console.log(
        JSON.stringify({
          side: 'typescript',
          images,
          seconds,
          images_per_second: images / seconds,
          seconds_per_image: seconds / images,
          load_seconds: loadSeconds,
          // maxRSS is in kilobytes: the process's peak resident set, weights and activations included.
          peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
          threads,
          lanes: pool.laneCount,
          device: values.device,
        }),
      );
    }
    return { imagesPerSecond: images / seconds, lanes: pool.laneCount };
  } finally {
    await pool.release();
  }
}
