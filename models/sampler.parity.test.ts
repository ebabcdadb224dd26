/**
 * Parity with diffusers: the Python reference (parity/sampler_reference.py) runs
 * StableDiffusionPipeline in PyTorch; this runs the TypeScript sampler on the ONNX
 * export of the same generator, from the same embeddings, latents and noise.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Generator } from './generator.js';
import { GivenNoise } from './noise.js';
import { decodeLatents, denoise, encodeTexts } from './sampler.js';
import { parseSchedulerConfig, readRawSchedulerConfig } from './schedulers/config.js';
import { createScheduler } from './schedulers/registry.js';
import { runPythonModule, testGenerator } from './testing/python.js';

interface ReferenceCase {
  name: string;
  className: string;
  schedulerConfig: string;
  timesteps: number[];
  sigmas: number[] | null;
  initNoiseSigma: number;
  noiseUsed: number;
  finalLatents: number[];
  decoded?: { dims: number[]; data: number[] };
}

interface Reference {
  prompts: string[];
  steps: number;
  guidanceScale: number;
  embedDims: number[];
  promptEmbeds: number[];
  negativeEmbeds: number[];
  latentDims: number[];
  initialLatents: number[];
  noise: number[][];
  cases: ReferenceCase[];
}

const TOLERANCE = 1e-3;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

let scratch: string;
let reference: Reference;
let generator: Generator;
const diffs: Record<string, number> = {};

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'sampler-parity-'));
  const folder = await testGenerator(scratch);
  const out = join(scratch, 'reference');
  await runPythonModule('parity.sampler_reference', ['--generator', folder, '--out', out, '--steps', '5']);
  reference = JSON.parse(await readFile(join(out, 'reference.json'), 'utf8')) as Reference;
  generator = await Generator.load({ base: folder });
});

afterAll(async () => {
  await generator?.release();
  if (scratch) await rm(scratch, { recursive: true, force: true });
  if (Object.keys(diffs).length > 0) console.log('max abs difference from diffusers:', diffs);
});

describe('text encoding', () => {
  it('matches the pipeline’s prompt and unconditional embeddings', async () => {
    const prompts = await encodeTexts(generator, reference.prompts);
    const empty = await encodeTexts(generator, reference.prompts.map(() => ''));
    expect(prompts.dims).toEqual(reference.embedDims);
    diffs['prompt embeddings'] = maxAbsDiff(prompts.data, reference.promptEmbeds);
    diffs['negative embeddings'] = maxAbsDiff(empty.data, reference.negativeEmbeds);
    expect(diffs['prompt embeddings']).toBeLessThanOrEqual(TOLERANCE);
    expect(diffs['negative embeddings']).toBeLessThanOrEqual(TOLERANCE);
  });
});

describe('schedulers and denoising', () => {
  const cases = () => reference.cases;

  it('covers every scheduler class', () => {
    expect(new Set(cases().map((c) => c.className))).toEqual(
      new Set(['DDIMScheduler', 'EulerDiscreteScheduler', 'EulerAncestralDiscreteScheduler', 'DPMSolverMultistepScheduler']),
    );
  });

  it('computes diffusers’ timesteps, sigmas and initial noise sigma', async () => {
    for (const c of cases()) {
      const config = parseSchedulerConfig(await readRawSchedulerConfig(c.schedulerConfig), c.schedulerConfig);
      const scheduler = createScheduler(config);
      scheduler.setTimesteps(reference.steps);
      expect(maxAbsDiff(scheduler.timesteps, c.timesteps), `${c.name} timesteps`).toBeLessThanOrEqual(1e-3);
      expect(Math.abs(scheduler.initNoiseSigma - c.initNoiseSigma), `${c.name} initNoiseSigma`).toBeLessThanOrEqual(1e-5 * c.initNoiseSigma);
    }
  });

  it('reproduces the pipeline’s final latents for every case', async () => {
    const embedDims = reference.embedDims;
    for (const c of cases()) {
      const config = parseSchedulerConfig(await readRawSchedulerConfig(c.schedulerConfig), c.schedulerConfig);
      const latents = await denoise(generator, {
        promptEmbeds: { data: Float32Array.from(reference.promptEmbeds), dims: embedDims },
        negativeEmbeds: { data: Float32Array.from(reference.negativeEmbeds), dims: embedDims },
        initialLatents: { data: Float32Array.from(reference.initialLatents), dims: reference.latentDims },
        steps: reference.steps,
        guidanceScale: reference.guidanceScale,
        scheduler: createScheduler(config),
        noise: new GivenNoise(reference.noise.map((n) => Float32Array.from(n))),
      });
      diffs[c.name] = maxAbsDiff(latents.data, c.finalLatents);
    }
    for (const c of cases()) expect(diffs[c.name], c.name).toBeLessThanOrEqual(TOLERANCE);
  });

  it('decodes latents to the pipeline’s uint8 images', async () => {
    const c = cases().find((x) => x.decoded)!;
    const images = await decodeLatents(generator, { data: Float32Array.from(c.finalLatents), dims: reference.latentDims });
    const [batch, , height, width] = c.decoded!.dims;
    expect(images).toHaveLength(batch);
    // Ours is interleaved RGB, the reference planar CHW.
    let worst = 0;
    images.forEach((image, b) => {
      expect([image.height, image.width]).toEqual([height, width]);
      for (let p = 0; p < height * width; p++) {
        for (let ch = 0; ch < 3; ch++) {
          const want = c.decoded!.data[((b * 3 + ch) * height * width) + p];
          worst = Math.max(worst, Math.abs(image.data[p * 3 + ch] - want));
        }
      }
    });
    diffs['decoded image (uint8 levels)'] = worst;
    expect(worst).toBeLessThanOrEqual(1);
  });
});
