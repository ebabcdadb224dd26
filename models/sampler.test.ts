/**
 * The sampler on a real generator (the shapes pack's, or a random-weight one of the
 * same architecture), and its parity with diffusers: the Python reference
 * (parity/sampler_reference.py) runs StableDiffusionPipeline in PyTorch; this runs the
 * TypeScript sampler on the ONNX export of the same generator, from the same
 * embeddings, latents and noise.
 */
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExecutionProviderError, ModelInterfaceError, ModelLayoutError, ModelInputError } from './errors.js';
import { Generator, GENERATOR_LAYOUT, type GeneratorSource } from './generator.js';
import { GivenNoise } from './noise.js';
import { encodePng, readText } from './png.js';
import { decodeLatents, denoise, describeScheduler, encodeTexts, generationText, sample, type SampleRequest } from './sampler.js';
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
let folder: string;
let reference: Reference;
let generator: Generator;
const diffs: Record<string, number> = {};

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'sampler-parity-'));
  folder = await testGenerator(scratch);
  const out = join(scratch, 'reference');
  // Guidance multiplies the (1e-6-scale) ONNX-vs-PyTorch kernel differences each step; on
  // the trained pack generator guidance 5 leaves under 20% headroom below the tolerance
  // on some schedulers, guidance 3 about 3x, while exercising the same code.
  await runPythonModule('parity.sampler_reference', ['--generator', folder, '--out', out, '--steps', '5', '--guidance', '3']);
  reference = JSON.parse(await readFile(join(out, 'reference.json'), 'utf8')) as Reference;
  generator = await Generator.load({ base: folder });
});

afterAll(async () => {
  await generator?.release();
  if (scratch) await rm(scratch, { recursive: true, force: true });
  if (Object.keys(diffs).length > 0) console.log('max abs difference from diffusers:', diffs);
});

/** A generator folder of links to the test generator's files, with some replaced or left out. */
async function linkedGenerator(name: string, replace: Record<string, string | null>): Promise<string> {
  const root = join(scratch, name);
  const L = GENERATOR_LAYOUT;
  const files = [L.modelIndex, L.schedulerConfig, ...L.tokenizerFiles, L.textEncoder, L.unet, L.vaeDecoder, L.vaeConfigs[0]];
  for (const file of files) {
    const target = file in replace ? replace[file] : join(folder, file);
    if (target === null || target === undefined) continue;
    await mkdir(join(root, file, '..'), { recursive: true });
    await symlink(target, join(root, file));
  }
  return root;
}

describe('text encoding', () => {
  it('matches the pipeline’s prompt and unconditional embeddings', async () => {
    const prompts = await encodeTexts(generator, reference.prompts);
    const empty = await encodeTexts(
      generator,
      reference.prompts.map(() => ''),
    );
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
          const want = c.decoded!.data[(b * 3 + ch) * height * width + p];
          worst = Math.max(worst, Math.abs(image.data[p * 3 + ch] - want));
        }
      }
    });
    diffs['decoded image (uint8 levels)'] = worst;
    expect(worst).toBeLessThanOrEqual(1);
  });
});

describe('sample', () => {
  const request: SampleRequest = {
    prompts: ['two red circles', 'a blue square'],
    seeds: [3, 5],
    steps: 3,
    guidanceScale: 5,
    width: 64,
    height: 64,
  };

  it('turns prompts and seeds into RGB images, the same each time', async () => {
    const progress: number[][] = [];
    const first = await sample(generator, { ...request, onStep: (step, steps) => progress.push([step, steps]) });
    expect(progress).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    const again = await sample(generator, request);
    const latentSide = 64 / generator.vae.spatialFactor;
    expect(first.latents.dims).toEqual([2, generator.vae.latentChannels, latentSide, latentSide]);
    expect(first.images.map((i) => [i.width, i.height, i.data.length])).toEqual([
      [64, 64, 64 * 64 * 3],
      [64, 64, 64 * 64 * 3],
    ]);
    expect(again.images[1].data).toEqual(first.images[1].data);
    const otherSeed = await sample(generator, { ...request, seeds: [3, 6] });
    expect(otherSeed.images[1].data).not.toEqual(first.images[1].data);
  });

  it('gives an image the same latents whatever else shares its batch', async () => {
    const pair = await sample(generator, request);
    const alone = await sample(generator, { ...request, prompts: ['a blue square'], seeds: [5] });
    const size = alone.latents.data.length;
    expect(maxAbsDiff(alone.latents.data, pair.latents.data.subarray(size))).toBeLessThanOrEqual(1e-5);
  });

  it('samples with another scheduler class, ancestral noise from the seeds', async () => {
    const choice = { className: 'EulerAncestralDiscreteScheduler', overrides: { timestep_spacing: 'trailing' } } as const;
    const a = await sample(generator, { ...request, scheduler: choice });
    const b = await sample(generator, { ...request, scheduler: choice });
    expect(a.scheduler.config.className).toBe('EulerAncestralDiscreteScheduler');
    expect(b.latents.data).toEqual(a.latents.data);
  });

  it('writes PNGs carrying the generation parameters', async () => {
    const result = await sample(generator, { ...request, negativePrompt: 'blurry' });
    const png = await encodePng(
      result.images[0],
      generationText(generator.name, { ...request, negativePrompt: 'blurry' }, describeScheduler(result.scheduler, undefined), 0),
    );
    expect(readText(png)).toMatchObject({
      prompt: 'two red circles',
      negative_prompt: 'blurry',
      seed: '3',
      steps: '3',
      guidance_scale: '5',
      scheduler: String(generator.schedulerConfig['_class_name']),
      generator: folder,
      size: '64x64',
    });
  });

  it('refuses bad requests, naming the field', async () => {
    await expect(sample(generator, { ...request, prompts: ['a red circle', ' '] })).rejects.toThrow(ModelInputError);
    await expect(sample(generator, { ...request, prompts: ['a red circle', ''] })).rejects.toThrow(/prompts\[1\] is empty/);
    await expect(sample(generator, { ...request, seeds: [1] })).rejects.toThrow(/seeds: 1 given for 2 prompts/);
    await expect(sample(generator, { ...request, width: 63 })).rejects.toThrow(/width must be a positive multiple/);
    await expect(sample(generator, { ...request, seeds: undefined })).rejects.toThrow(/seeds, initialLatents, or both/);
    await expect(sample(generator, { ...request, seeds: [1, -2] })).rejects.toThrow(/seed must be/);
  });
});

describe('generator layout', () => {
  it('names a missing file and what it should be', async () => {
    const root = await linkedGenerator('no-decoder', { [GENERATOR_LAYOUT.vaeDecoder]: null });
    await expect(Generator.load({ base: root })).rejects.toThrow(ModelLayoutError);
    await expect(Generator.load({ base: root })).rejects.toThrow(`${join(root, 'vae_decoder/model.onnx')}: not found; expected the ONNX VAE decoder`);
    await expect(Generator.load({ base: join(scratch, 'nowhere') })).rejects.toThrow(/no such folder/);
  });

  it('names a graph whose inputs are not a UNet’s', async () => {
    const root = await linkedGenerator('wrong-unet', { [GENERATOR_LAYOUT.unet]: join(folder, GENERATOR_LAYOUT.textEncoder) });
    const load = Generator.load({ base: root });
    await expect(load).rejects.toThrow(ModelInterfaceError);
    await expect(Generator.load({ base: root })).rejects.toThrow(/unet\/model\.onnx: inputs are input_ids; expected sample, timestep, encoder_hidden_states/);
  });

  it('names a VAE decoder whose output is not RGB', async () => {
    // A stand-in decoder that answers with four channels; the check reads only the output's shape.
    const run = () => Promise.resolve({ data: new Float32Array(4 * 8 * 8), dims: [1, 4, 8, 8] });
    const fourChannels = { vae: generator.vae, files: generator.files, vaeDecoder: { run } } as unknown as Generator;
    const decoded = decodeLatents(fourChannels, { data: new Float32Array(4), dims: [1, 4, 1, 1] });
    await expect(decoded).rejects.toThrow(ModelInterfaceError);
    await expect(decoded).rejects.toThrow(/vae_decoder\/model\.onnx: decoded 4 channels, 3 expected/);
  });

  it('runs on CUDA where its provider is installed, and otherwise says how to install it', async () => {
    const onGpu = await Generator.load({ base: folder }, { device: 'cuda:0' }).catch((error: unknown) => error);
    if (onGpu instanceof Generator) {
      await onGpu.release();
      return;
    }
    expect(onGpu).toBeInstanceOf(ExecutionProviderError);
    expect((onGpu as Error).message).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/);
  });

  it('swaps in a tuned UNet and says so in its name', async () => {
    const tuned = join(scratch, 'tuned');
    await mkdir(join(tuned, 'unet'), { recursive: true });
    await symlink(join(folder, GENERATOR_LAYOUT.unet), join(tuned, GENERATOR_LAYOUT.unet));
    const tunedGenerator = await Generator.load({ base: folder, tunedUnet: tuned });
    try {
      expect(tunedGenerator.files.unet).toBe(join(tuned, 'unet/model.onnx'));
      expect(tunedGenerator.name).toContain(`+ unet ${tuned}`);
    } finally {
      await tunedGenerator.release();
    }
    await expect(Generator.load({ base: folder, tunedUnet: join(scratch, 'no-tuned') })).rejects.toThrow(/the tuned UNet written by the LoRA trainer/);
  });
});

describe('graph interfaces of other exports', () => {
  let variants: string;
  const ddim = () => reference.cases.find((c) => c.name === 'ddim')!;

  beforeAll(async () => {
    variants = join(scratch, 'variants');
    await runPythonModule('parity.interface_variants', ['--generator', folder, '--out', variants]);
  });

  async function finalLatents(source: GeneratorSource): Promise<Float32Array> {
    const variant = await Generator.load(source);
    try {
      const c = ddim();
      const config = parseSchedulerConfig(await readRawSchedulerConfig(c.schedulerConfig), c.schedulerConfig);
      const latents = await denoise(variant, {
        promptEmbeds: { data: Float32Array.from(reference.promptEmbeds), dims: reference.embedDims },
        negativeEmbeds: { data: Float32Array.from(reference.negativeEmbeds), dims: reference.embedDims },
        initialLatents: { data: Float32Array.from(reference.initialLatents), dims: reference.latentDims },
        steps: reference.steps,
        guidanceScale: reference.guidanceScale,
        scheduler: createScheduler(config),
      });
      return latents.data;
    } finally {
      await variant.release();
    }
  }

  it.each([
    ['unet_timestep_int64.onnx', TOLERANCE, 0],
    ['unet_timestep_scalar.onnx', TOLERANCE, 0],
    // Half-precision inputs and outputs round to 11 significant bits every step, an
    // error that grows with the latents' magnitude.
    ['unet_float16.onnx', 0, 5e-2],
  ])('feeds a UNet whose inputs are %s', async (file, absolute, relative) => {
    const root = await linkedGenerator(`variant-${file}`, { [GENERATOR_LAYOUT.unet]: join(variants, file) });
    const want = ddim().finalLatents;
    diffs[`unet ${file}`] = maxAbsDiff(await finalLatents({ base: root }), want);
    const magnitude = want.reduce((a, b) => Math.max(a, Math.abs(b)), 1);
    expect(diffs[`unet ${file}`]).toBeLessThanOrEqual(absolute + relative * magnitude);
  });

  it('loads a tuned UNet whose weights sit in an external model.onnx_data file', async () => {
    const latents = await finalLatents({ base: folder, tunedUnet: join(variants, 'external') });
    expect(maxAbsDiff(latents, ddim().finalLatents)).toBeLessThanOrEqual(TOLERANCE);
  });

  it('feeds int64 token ids to a text encoder that takes them', async () => {
    const root = await linkedGenerator('variant-text-int64', { [GENERATOR_LAYOUT.textEncoder]: join(variants, 'text_encoder_int64.onnx') });
    const variant = await Generator.load({ base: root });
    try {
      expect(variant.textEncoder.input('input_ids').type).toBe('int64');
      const embeds = await encodeTexts(variant, reference.prompts);
      expect(maxAbsDiff(embeds.data, reference.promptEmbeds)).toBeLessThanOrEqual(TOLERANCE);
    } finally {
      await variant.release();
    }
  });
});
