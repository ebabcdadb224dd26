import { ModelInputError, ModelInterfaceError } from './errors.js';
import type { Generator } from './generator.js';
import { PerImageNoise, checkSeed, type NoiseSource } from './noise.js';
import type { FloatTensor, HostTensor } from './onnx.js';
import { schedulerFromChoice, type SchedulerChoice } from './schedulers/registry.js';
import type { Scheduler } from './schedulers/scheduler.js';

/** An RGB image, 8 bits per channel, rows top to bottom, channels interleaved. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Called after each denoising step (e.g. to heartbeat a long-running activity). */
export type StepCallback = (step: number, steps: number) => void;

/**
 * Token ids as StableDiffusionPipeline makes them: padded to the tokenizer's maximum
 * length and truncated to it.
 */
export function tokenize(generator: Generator, texts: readonly string[]): HostTensor {
  const length = generator.maxTokens;
  const encoded = generator.tokenizer(texts as string[], {
    padding: 'max_length',
    max_length: length,
    truncation: true,
    return_tensor: false,
  }) as { input_ids: number[][] };
  const ids = new Int32Array(texts.length * length);
  encoded.input_ids.forEach((row, i) => ids.set(row, i * length));
  return { data: ids, dims: [texts.length, length] };
}

/** The text encoder's last hidden state for each text: [texts, maxTokens, hidden]. */
export async function encodeTexts(generator: Generator, texts: readonly string[]): Promise<FloatTensor> {
  return generator.textEncoder.run({ input_ids: tokenize(generator, texts) }, 'last_hidden_state');
}

/** The UNet's timestep in the dtype and rank its graph declares (exports differ: 0-d, [1] or [batch]). */
function timestepTensor(generator: Generator, timestep: number, batch: number): HostTensor {
  const meta = generator.unet.input('timestep');
  const value = meta.type === 'int64' || meta.type === 'int32' ? Math.round(timestep) : timestep;
  if (meta.shape.length === 0) return { data: Float32Array.of(value), dims: [] };
  const length = meta.shape[0] === 1 ? 1 : batch;
  return { data: new Float32Array(length).fill(value), dims: [length] };
}

export interface DenoiseRequest {
  /** Conditional text embeddings, [batch, tokens, hidden]. */
  readonly promptEmbeds: FloatTensor;
  /** Unconditional embeddings of the same shape; needed when guidanceScale > 1. */
  readonly negativeEmbeds?: FloatTensor;
  /** Unit-variance initial latents, [batch, channels, height, width]; scaled by the scheduler's initial σ here. */
  readonly initialLatents: FloatTensor;
  readonly steps: number;
  readonly guidanceScale: number;
  /** A fresh scheduler (stateful: one per run). */
  readonly scheduler: Scheduler;
  /** Noise for schedulers that consume it each step. */
  readonly noise?: NoiseSource;
  readonly onStep?: StepCallback;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * The denoising loop of diffusers' StableDiffusionPipeline from given embeddings and
 * latents to final latents. With guidance > 1 the unconditional and conditional halves
 * go through the UNet as one batch (unconditional first), as diffusers does.
 */
export async function denoise(generator: Generator, request: DenoiseRequest): Promise<FloatTensor> {
  const { promptEmbeds, negativeEmbeds, initialLatents, steps, guidanceScale, scheduler } = request;
  const [batch, ...latentShape] = initialLatents.dims;
  if (initialLatents.dims.length !== 4 || initialLatents.data.length !== batch * latentShape.reduce((a, b) => a * b, 1)) {
    throw new ModelInputError(`initialLatents must be [batch, channels, height, width], got [${initialLatents.dims.join(', ')}]`);
  }
  if (promptEmbeds.dims[0] !== batch) {
    throw new ModelInputError(`promptEmbeds has batch ${promptEmbeds.dims[0]}, initialLatents has ${batch}`);
  }
  if (!(guidanceScale >= 0) || !Number.isFinite(guidanceScale)) {
    throw new ModelInputError(`guidanceScale must be a finite number >= 0, got ${guidanceScale}`);
  }
  const guided = guidanceScale > 1;
  if (guided && (!negativeEmbeds || !sameDims(negativeEmbeds.dims, promptEmbeds.dims))) {
    throw new ModelInputError(
      `guidanceScale > 1 needs negativeEmbeds of shape [${promptEmbeds.dims.join(', ')}], got ${negativeEmbeds ? `[${negativeEmbeds.dims.join(', ')}]` : 'none'}`,
    );
  }
  const stepNoise = scheduler.usesNoise ? request.noise : undefined;
  if (scheduler.usesNoise && !stepNoise) {
    throw new ModelInputError(`${scheduler.config.className} draws noise each step: pass a noise source`);
  }
  const size = initialLatents.data.length;
  const unetBatch = guided ? 2 * batch : batch;
  const hidden = guided && negativeEmbeds ? concat(negativeEmbeds.data, promptEmbeds.data) : promptEmbeds.data;
  const hiddenDims = [unetBatch, ...promptEmbeds.dims.slice(1)];
  const unetDims = [unetBatch, ...latentShape];

  scheduler.setTimesteps(steps);
  let latents: Float32Array = initialLatents.data.map((x) => x * scheduler.initNoiseSigma);
  const total = scheduler.timesteps.length;
  for (const [index, t] of scheduler.timesteps.entries()) {
    const scaled = scheduler.scaleModelInput(guided ? concat(latents, latents) : latents, t);
    const output = await generator.unet.run(
      {
        sample: { data: scaled, dims: unetDims },
        timestep: timestepTensor(generator, t, unetBatch),
        encoder_hidden_states: { data: hidden, dims: hiddenDims },
      },
      'out_sample',
    );
    const prediction = guided ? applyGuidance(output.data, size, guidanceScale) : output.data;
    latents = scheduler.step(prediction, t, latents, stepNoise?.next(size));
    request.onStep?.(index + 1, total);
  }
  return { data: latents, dims: initialLatents.dims };
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Classifier-free guidance: uncond + scale · (cond − uncond), from the UNet's [uncond; cond] batch. */
function applyGuidance(output: Float32Array, size: number, scale: number): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const uncond = output[i];
    out[i] = uncond + scale * (output[size + i] - uncond);
  }
  return out;
}

/** VAE-decodes final latents into RGB images. */
export async function decodeLatents(generator: Generator, latents: FloatTensor): Promise<RgbImage[]> {
  const scaled = latents.data.map((x) => x / generator.vae.scalingFactor);
  const decoded = await generator.vaeDecoder.run({ latent_sample: { data: scaled, dims: latents.dims } }, 'sample');
  const [batch, channels, height, width] = decoded.dims;
  if (channels !== 3) throw new ModelInterfaceError(`${generator.files.vaeDecoder}: decoded ${channels} channels, 3 expected`);
  const plane = height * width;
  return Array.from({ length: batch }, (_, b) => {
    const data = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const offset = (b * 3 + c) * plane;
      for (let p = 0; p < plane; p++) {
        const unit = Math.min(1, Math.max(0, decoded.data[offset + p] / 2 + 0.5));
        data[p * 3 + c] = Math.round(unit * 255);
      }
    }
    return { width, height, data };
  });
}

export interface SampleRequest {
  readonly prompts: readonly string[];
  /** One negative prompt for every image; "" (the default) is diffusers' unconditional prompt. */
  readonly negativePrompt?: string;
  /** One seed per prompt; the initial latents (unless given) and any per-step noise come from it. */
  readonly seeds?: readonly number[];
  /** Unit-variance initial latents, [prompts, channels, height/f, width/f], instead of seeded ones. */
  readonly initialLatents?: FloatTensor;
  readonly steps: number;
  readonly guidanceScale: number;
  readonly width: number;
  readonly height: number;
  /** Another scheduler class or options than the generator's own config. */
  readonly scheduler?: SchedulerChoice;
  readonly onStep?: StepCallback;
}

export interface SampleResult {
  readonly images: RgbImage[];
  readonly latents: FloatTensor;
  readonly scheduler: Scheduler;
}

function checkRequest(generator: Generator, request: SampleRequest): void {
  const { prompts, seeds, width, height, steps } = request;
  if (prompts.length === 0) throw new ModelInputError('prompts: at least one prompt is needed');
  prompts.forEach((p, i) => {
    if (typeof p !== 'string' || p.trim() === '') throw new ModelInputError(`prompts[${i}] is empty; a prompt describes the image`);
  });
  if (seeds) {
    if (seeds.length !== prompts.length) throw new ModelInputError(`seeds: ${seeds.length} given for ${prompts.length} prompts`);
    seeds.forEach(checkSeed);
  }
  const factor = generator.sizeMultiple;
  for (const [name, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(value) || value < factor || value % factor !== 0) {
      throw new ModelInputError(`${name} must be a positive multiple of ${factor} (the VAE's scale times the UNet's downsampling), got ${value}`);
    }
  }
  if (!Number.isInteger(steps) || steps < 1) throw new ModelInputError(`steps must be a positive integer, got ${steps}`);
}

/** Text to images: tokenise, encode, denoise with guidance, decode. */
export async function sample(generator: Generator, request: SampleRequest): Promise<SampleResult> {
  checkRequest(generator, request);
  const { prompts, seeds, width, height } = request;
  const batch = prompts.length;
  const latentDims = [batch, generator.vae.latentChannels, height / generator.vae.spatialFactor, width / generator.vae.spatialFactor];
  const noise = seeds ? new PerImageNoise(seeds) : undefined;
  const size = latentDims.reduce((a, b) => a * b, 1);
  const initialLatents = request.initialLatents ?? (noise ? { data: noise.next(size), dims: latentDims } : undefined);
  if (!initialLatents) throw new ModelInputError('give seeds, initialLatents, or both (then the seeds drive only per-step noise)');
  if (!sameDims(initialLatents.dims, latentDims)) {
    throw new ModelInputError(`initialLatents must be [${latentDims.join(', ')}] for this size, got [${initialLatents.dims.join(', ')}]`);
  }
  const guided = request.guidanceScale > 1;
  const embeds = await encodeTexts(generator, guided ? [...prompts.map(() => request.negativePrompt ?? ''), ...prompts] : prompts);
  const [, tokens, hiddenSize] = embeds.dims;
  const half = batch * tokens * hiddenSize;
  const scheduler = schedulerFromChoice(generator.schedulerConfig, generator.files.schedulerConfig, request.scheduler);
  const latents = await denoise(generator, {
    promptEmbeds: { data: guided ? embeds.data.subarray(half) : embeds.data, dims: [batch, tokens, hiddenSize] },
    negativeEmbeds: guided ? { data: embeds.data.subarray(0, half), dims: [batch, tokens, hiddenSize] } : undefined,
    initialLatents,
    steps: request.steps,
    guidanceScale: request.guidanceScale,
    scheduler,
    noise,
    onStep: request.onStep,
  });
  return { images: await decodeLatents(generator, latents), latents, scheduler };
}

/** How PNG metadata names a run's scheduler: its class, and the overrides asked for. */
export function describeScheduler(scheduler: Scheduler, choice: SchedulerChoice | undefined): string {
  const overrides = choice?.overrides && Object.keys(choice.overrides).length > 0 ? ` ${JSON.stringify(choice.overrides)}` : '';
  return `${scheduler.config.className}${overrides}`;
}

/** What made image `index` of a sample() call, as PNG text entries; `scheduler` as describeScheduler() gives it. */
export function generationText(generatorName: string, request: SampleRequest, scheduler: string, index: number): Record<string, string> {
  const seed = request.seeds?.[index];
  return {
    prompt: request.prompts[index],
    negative_prompt: request.negativePrompt ?? '',
    ...(seed === undefined ? {} : { seed: String(seed) }),
    steps: String(request.steps),
    guidance_scale: String(request.guidanceScale),
    scheduler,
    generator: generatorName,
    size: `${request.width}x${request.height}`,
  };
}
