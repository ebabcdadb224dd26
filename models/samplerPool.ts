import { dirname } from 'node:path';

import { generatorName, readGeneratorGeometry, resolveGeneratorFiles, type GeneratorFiles, type GeneratorSource, type VaeSettings } from './generator.js';
import type { PooledSample } from './laneServices.js';
import { Lanes, contiguousParts, planLanes } from './lanes.js';
import { parseDevice } from './onnx.js';
import type { SampleRequest } from './sampler.js';

export type { PooledSample } from './laneServices.js';

/**
 * A generator loaded in lanes (lanes.ts), each with its own ONNX sessions and a share of the
 * threads. A request's images are split between the lanes and denoised side by side. Each
 * image's noise comes from its own seed, so the lanes change speed, not the images (beyond
 * float rounding, as a batch size does).
 */
export class SamplerPool {
  private constructor(
    readonly source: GeneratorSource,
    readonly files: GeneratorFiles,
    readonly vae: VaeSettings,
    /** Image sides must be multiples of this: the VAE's scale times the UNet's downsampling. */
    readonly sizeMultiple: number,
    private readonly lanes: Lanes<'sampler'>,
  ) {}

  /** Checks the folder's layout here, then loads a copy of the generator in each lane. */
  static async load(source: GeneratorSource, options: PoolOptions = {}): Promise<SamplerPool> {
    const device = options.device ?? 'cpu';
    parseDevice(device);
    const files = await resolveGeneratorFiles(source);
    const { vae, sizeMultiple } = await readGeneratorGeometry(files);
    const { lanes, threads } = await planLanes({
      device,
      threads: options.threads ?? null,
      folders: [files.textEncoder, files.unet, files.vaeDecoder].map((graph) => dirname(graph)),
      ...(options.lanes === undefined ? {} : { lanes: options.lanes }),
    });
    return new SamplerPool(source, files, vae, sizeMultiple, await Lanes.start({ service: 'sampler', options: { source, device, threads } }, lanes));
  }

  /** How PNG metadata and logs name this generator (as a Generator does). */
  get name(): string {
    return generatorName(this.source);
  }

  get laneCount(): number {
    return this.lanes.count;
  }

  /**
   * sample() of models/sampler.ts over the lanes: prompts (with their seeds and initial latents)
   * in contiguous parts, one per lane, each to the least busy lane, the images back in request
   * order. `onStep` hears a step when every lane has taken it.
   */
  async sample(request: SampleRequest): Promise<PooledSample> {
    const parts = splitRequest(request, this.lanes.count);
    const steps = parts.map(() => 0);
    let reported = 0;
    const onStep = (part: number, step: number, total: number) => {
      steps[part] = step;
      const slowest = Math.min(...steps);
      if (slowest > reported) {
        reported = slowest;
        request.onStep?.(slowest, total);
      }
    };
    const done = await this.lanes.callEach(parts, (index, { step, steps: total }) => onStep(index, step, total));
    const latentDims = [done.reduce((sum, d) => sum + d.latents.dims[0], 0), ...done[0].latents.dims.slice(1)];
    const latents = new Float32Array(latentDims.reduce((a, b) => a * b, 1));
    let offset = 0;
    for (const d of done) {
      latents.set(d.latents.data, offset);
      offset += d.latents.data.length;
    }
    return { images: done.flatMap((d) => d.images), latents: { data: latents, dims: latentDims }, scheduler: done[0].scheduler };
  }

  async release(): Promise<void> {
    await this.lanes.release();
  }
}

export interface PoolOptions {
  /** `cpu` (default) or `cuda:N`. */
  readonly device?: string;
  /** CPU threads for the whole pool, shared evenly by its lanes (default: the cores the process may use; one lane alone then takes onnxruntime's default). */
  readonly threads?: number;
  /** Lanes, each with its own copy of the graphs (default: defaultLanes()). */
  readonly lanes?: number;
}

/**
 * The request's prompts in `lanes` contiguous parts of near-equal size (none empty), each with
 * its seeds and initial latents. A request of no prompts goes whole to one lane, which refuses it.
 */
export function splitRequest(request: SampleRequest, lanes: number): SampleRequest[] {
  const { onStep: _onStep, ...plain } = request;
  const count = request.prompts.length;
  if (count <= 1 || lanes <= 1) return [plain];
  const latents = request.initialLatents;
  const perPrompt = latents && latents.dims[0] === count ? latents.data.length / count : null;
  return contiguousParts(count, lanes).map(([start, end]): SampleRequest => ({
    ...plain,
    prompts: request.prompts.slice(start, end),
    ...(request.seeds ? { seeds: request.seeds.slice(start, end) } : {}),
    // Latents of another batch than the prompts' go whole, so the lane names the mismatch.
    ...(latents
      ? {
          initialLatents:
            perPrompt === null ? latents : { data: latents.data.slice(start * perPrompt, end * perPrompt), dims: [end - start, ...latents.dims.slice(1)] },
        }
      : {}),
  }));
}
