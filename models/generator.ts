import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { AutoTokenizer, type PreTrainedTokenizer } from '@huggingface/transformers';

import { ModelInterfaceError, ModelLayoutError } from './errors.js';
import { OnnxModel, parseDevice } from './onnx.js';
import { readRawSchedulerConfig, type RawSchedulerConfig } from './schedulers/config.js';

/**
 * A text-to-image generator: a Stable Diffusion folder in the diffusers / Optimum
 * ONNX layout, optionally with its UNet replaced by a tuned one. The LoRA trainer
 * writes a fused `unet/model.onnx` into its output folder; a tuned generator is the
 * base with that UNet swapped in, everything else shared.
 */
export interface GeneratorSource {
  /** The base folder (model_index.json, scheduler/, tokenizer/, text_encoder/, unet/, vae_decoder/). */
  readonly base: string;
  /** A folder holding `unet/model.onnx` that replaces the base's UNet. */
  readonly tunedUnet?: string;
  /** How PNG metadata and logs name the tuned UNet (a store key, say) when its folder is a local copy; default: the folder. */
  readonly tunedUnetName?: string;
}

/** The files a generator is loaded from, each with what it must be. */
export const GENERATOR_LAYOUT = {
  modelIndex: 'model_index.json',
  schedulerConfig: 'scheduler/scheduler_config.json',
  tokenizer: 'tokenizer',
  tokenizerFiles: ['tokenizer/tokenizer.json', 'tokenizer/tokenizer_config.json'],
  textEncoder: 'text_encoder/model.onnx',
  unet: 'unet/model.onnx',
  vaeDecoder: 'vae_decoder/model.onnx',
  /** Optimum exports keep the VAE config beside the decoder; diffusers folders have vae/. */
  vaeConfigs: ['vae_decoder/config.json', 'vae/config.json'],
} as const;

export interface GeneratorFiles {
  readonly modelIndex: string;
  readonly schedulerConfig: string;
  readonly tokenizer: string;
  readonly textEncoder: string;
  readonly unet: string;
  readonly vaeDecoder: string;
  readonly vaeConfig: string;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function requireFile(path: string, what: string): Promise<string> {
  if (!(await isFile(path))) throw new ModelLayoutError(`${path}: not found; expected ${what}`);
  return path;
}

/** Checks the layout before any model loads, so a wrong folder fails at once and names the file. */
export async function resolveGeneratorFiles(source: GeneratorSource): Promise<GeneratorFiles> {
  const base = resolve(source.base);
  if (
    !(await stat(base).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  ) {
    throw new ModelLayoutError(`${base}: no such folder; expected a Stable Diffusion generator folder`);
  }
  const at = (relative: string) => join(base, relative);
  const L = GENERATOR_LAYOUT;
  for (const file of L.tokenizerFiles) await requireFile(at(file), 'the CLIP tokenizer (tokenizer.json and tokenizer_config.json)');
  const vaeConfig = (await Promise.all(L.vaeConfigs.map(async (c) => ((await isFile(at(c))) ? at(c) : null)))).find((found) => found !== null);
  if (!vaeConfig) {
    throw new ModelLayoutError(`${base}: neither ${L.vaeConfigs.join(' nor ')} found; expected the VAE config (scaling_factor)`);
  }
  return {
    modelIndex: await requireFile(at(L.modelIndex), 'the pipeline index of a diffusers Stable Diffusion folder'),
    schedulerConfig: await requireFile(at(L.schedulerConfig), 'the scheduler config'),
    tokenizer: at(L.tokenizer),
    textEncoder: await requireFile(at(L.textEncoder), 'the ONNX text encoder (export with `python -m loratrain.export_onnx`)'),
    unet: source.tunedUnet
      ? await requireFile(join(resolve(source.tunedUnet), L.unet), 'the tuned UNet written by the LoRA trainer')
      : await requireFile(at(L.unet), 'the ONNX UNet (export with `python -m loratrain.export_onnx`)'),
    vaeDecoder: await requireFile(at(L.vaeDecoder), 'the ONNX VAE decoder (export with `python -m loratrain.export_onnx`)'),
    vaeConfig,
  };
}

/** The VAE numbers the sampler needs, read from its config. */
export interface VaeSettings {
  /** Latents are divided by this before decoding (0.18215 for SD 1.x / 2.x). */
  readonly scalingFactor: number;
  /** Image pixels per latent cell along each side. */
  readonly spatialFactor: number;
  readonly latentChannels: number;
}

export function parseVaeSettings(config: unknown, source: string): VaeSettings {
  const fields = (typeof config === 'object' && config !== null ? config : {}) as Record<string, unknown>;
  const { scaling_factor: scaling, block_out_channels: blocks, latent_channels: channels } = fields;
  if (typeof scaling !== 'number' || !(scaling > 0)) {
    throw new ModelLayoutError(`${source}: field "scaling_factor" must be a positive number, got ${JSON.stringify(scaling ?? null)}`);
  }
  if (!Array.isArray(blocks) || blocks.length === 0) {
    throw new ModelLayoutError(`${source}: field "block_out_channels" must be a non-empty list, got ${JSON.stringify(blocks ?? null)}`);
  }
  if (typeof channels !== 'number' || !Number.isInteger(channels) || channels < 1) {
    throw new ModelLayoutError(`${source}: field "latent_channels" must be a positive integer, got ${JSON.stringify(channels ?? null)}`);
  }
  return { scalingFactor: scaling, spatialFactor: 2 ** (blocks.length - 1), latentChannels: channels };
}

/**
 * How many times the UNet halves its input, from `unet/config.json` beside its graph
 * (`block_out_channels`: one level per entry, a downsampling between levels), or 0 when the
 * folder has no config. Latents must divide evenly that often, or the graph's skip connections
 * do not line up.
 */
async function unetDownsamplings(unetGraph: string): Promise<number> {
  const path = join(dirname(unetGraph), 'config.json');
  if (!(await isFile(path))) return 0;
  const blocks = ((await readJson(path)) as { block_out_channels?: unknown }).block_out_channels;
  if (!Array.isArray(blocks) || blocks.length === 0) {
    throw new ModelLayoutError(`${path}: field "block_out_channels" must be a non-empty list, got ${JSON.stringify(blocks ?? null)}`);
  }
  return blocks.length - 1;
}

/** What a generator's configs say about its images, without loading a graph: the VAE and the multiple image sides must be of. */
export async function readGeneratorGeometry(files: GeneratorFiles): Promise<{ readonly vae: VaeSettings; readonly sizeMultiple: number }> {
  const vae = parseVaeSettings(await readJson(files.vaeConfig), files.vaeConfig);
  return { vae, sizeMultiple: vae.spatialFactor * 2 ** (await unetDownsamplings(files.unet)) };
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ModelLayoutError(`${path}: not readable JSON (${(error as Error).message})`);
  }
}

/** Graph inputs and outputs the sampler relies on, per ONNX part. */
const INTERFACES = {
  textEncoder: { inputs: ['input_ids'], output: 'last_hidden_state' },
  unet: { inputs: ['sample', 'timestep', 'encoder_hidden_states'], output: 'out_sample' },
  vaeDecoder: { inputs: ['latent_sample'], output: 'sample' },
} as const;

function checkInterface(model: OnnxModel, part: keyof typeof INTERFACES): void {
  const expected = INTERFACES[part];
  const unexpected = [...model.inputs.keys()].filter((name) => !(expected.inputs as readonly string[]).includes(name));
  const missing = expected.inputs.filter((name) => !model.inputs.has(name));
  if (missing.length > 0 || unexpected.length > 0) {
    throw new ModelInterfaceError(`${model.path}: inputs are ${[...model.inputs.keys()].join(', ')}; expected ${expected.inputs.join(', ')}`);
  }
  model.requireOutput(expected.output);
}

/** How PNG metadata and logs name a generator: its base folder, and the tuned UNet's name when it has one. */
export function generatorName({ base, tunedUnet, tunedUnetName }: GeneratorSource): string {
  return tunedUnet ? `${resolve(base)} + unet ${tunedUnetName ?? resolve(tunedUnet)}` : resolve(base);
}

export interface LoadOptions {
  /** `cpu` (default) or `cuda:N`. */
  readonly device?: string;
  /** CPU threads per graph; onnxruntime's default (all cores) when absent. */
  readonly threads?: number;
}

/** A loaded generator: sessions, tokenizer and configs. Release it when done. */
export class Generator {
  private constructor(
    readonly source: GeneratorSource,
    readonly files: GeneratorFiles,
    readonly schedulerConfig: RawSchedulerConfig,
    readonly vae: VaeSettings,
    /** Image sides must be multiples of this: the VAE's scale times the UNet's downsampling. */
    readonly sizeMultiple: number,
    readonly tokenizer: PreTrainedTokenizer,
    readonly maxTokens: number,
    readonly textEncoder: OnnxModel,
    readonly unet: OnnxModel,
    readonly vaeDecoder: OnnxModel,
  ) {}

  static async load(source: GeneratorSource, options: LoadOptions = {}): Promise<Generator> {
    const provider = parseDevice(options.device ?? 'cpu');
    const files = await resolveGeneratorFiles(source);
    await readJson(files.modelIndex);
    const schedulerConfig = await readRawSchedulerConfig(files.schedulerConfig);
    const { vae, sizeMultiple } = await readGeneratorGeometry(files);
    // Local files only, per call (not the library-wide switch, which other models share):
    // a generator folder is complete or it is an error, never a download.
    const tokenizer = await AutoTokenizer.from_pretrained(files.tokenizer, { local_files_only: true }).catch((error: Error) => {
      throw new ModelLayoutError(`${files.tokenizer}: cannot load the tokenizer (${error.message})`);
    });
    const maxTokens = Number(tokenizer.model_max_length);
    if (!Number.isInteger(maxTokens) || maxTokens < 2 || maxTokens > 4096) {
      throw new ModelLayoutError(`${files.tokenizer}/tokenizer_config.json: field "model_max_length" must be the text encoder's length, got ${maxTokens}`);
    }
    const loads = await Promise.allSettled([files.textEncoder, files.unet, files.vaeDecoder].map((path) => OnnxModel.load(path, provider, options.threads)));
    const failed = loads.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (failed) {
      await Promise.all(loads.map((l) => (l.status === 'fulfilled' ? l.value.release() : undefined)));
      throw failed.reason;
    }
    const [textEncoder, unet, vaeDecoder] = loads.map((l) => (l as PromiseFulfilledResult<OnnxModel>).value);
    const generator = new Generator(source, files, schedulerConfig, vae, sizeMultiple, tokenizer, maxTokens, textEncoder, unet, vaeDecoder);
    try {
      checkInterface(textEncoder, 'textEncoder');
      checkInterface(unet, 'unet');
      checkInterface(vaeDecoder, 'vaeDecoder');
    } catch (error) {
      await generator.release();
      throw error;
    }
    return generator;
  }

  /** How PNG metadata and logs name this generator. */
  get name(): string {
    return generatorName(this.source);
  }

  async release(): Promise<void> {
    await Promise.all([this.textEncoder.release(), this.unet.release(), this.vaeDecoder.release()]);
  }
}
