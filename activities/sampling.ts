/** What the sample and evaluate activities share: a generator to load, and PNGs of one prompt. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { SamplingSettings } from '../config/round.js';
import type { GeneratorSource } from '../models/generator.js';
import { encodePng } from '../models/png.js';
import { generationText, type SampleRequest } from '../models/sampler.js';
import type { SamplerPool } from '../models/samplerPool.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';

/** Width and height to sample at: the settings', or the generator's own (UNet sample size × VAE factor). */
async function imageSize(generator: SamplerPool, settings: SamplingSettings): Promise<{ width: number; height: number }> {
  if (settings.width > 0 && settings.height > 0) return { width: settings.width, height: settings.height };
  const config = join(generator.source.base, 'unet', 'config.json');
  const unet = JSON.parse(await readFile(config, 'utf8').catch(() => '{}')) as { sample_size?: unknown };
  const size = typeof unet.sample_size === 'number' ? unet.sample_size * generator.vae.spatialFactor : 0;
  if (size <= 0) throw badData('BadModel', `${config}: no "sample_size"; set sampling.width and sampling.height`);
  return { width: settings.width || size, height: settings.height || size };
}

/** `seeds` in runs of at most `batchSize` (null: one run of them all). */
export function seedBatches(seeds: readonly number[], batchSize: number | null): number[][] {
  const size = batchSize === null ? Math.max(1, seeds.length) : batchSize;
  const batches: number[][] = [];
  for (let start = 0; start < seeds.length; start += size) batches.push(seeds.slice(start, start + size));
  return batches;
}

/**
 * PNGs of one prompt at the given seeds, each carrying its generation parameters and class in
 * text chunks, denoised `settings.batchSize` at a time in each of the generator's lanes (all at
 * once when null). Each image's noise comes from its own seed, so the batch size and the lanes
 * change memory and speed, not the images.
 * `onStep` lets a long denoising loop heartbeat.
 */
export async function samplePngs(
  generator: SamplerPool,
  settings: SamplingSettings,
  prompt: { className: string; text: string },
  seeds: readonly number[],
  onStep: () => void,
): Promise<Buffer[]> {
  const scheduler = settings.scheduler;
  const size = await imageSize(generator, settings);
  const pngs: Buffer[] = [];
  const batches = seedBatches(seeds, settings.batchSize ?? null);
  // Up to one batch per lane at once: batches smaller than the lanes would leave the others idle.
  for (let first = 0; first < batches.length; first += generator.laneCount) {
    const together = batches.slice(first, first + generator.laneCount).map(async (batch) => {
      const request: SampleRequest = {
        prompts: batch.map(() => prompt.text),
        negativePrompt: settings.negativePrompt,
        seeds: batch,
        steps: settings.steps,
        guidanceScale: settings.guidanceScale,
        ...size,
        ...(scheduler === null ? {} : { scheduler: { className: scheduler } }),
        onStep,
      };
      const result = await generator.sample(request);
      return Promise.all(
        result.images.map((image, i) => encodePng(image, { ...generationText(generator.name, request, result.scheduler, i), class: prompt.className })),
      );
    });
    for (const batchPngs of await Promise.all(together)) pngs.push(...batchPngs);
  }
  return pngs;
}

/**
 * A generator to load: the base folder, or the base with a tuned UNet fetched from the store into
 * the work folder. Published artifacts never change, so a file already fetched is not fetched again.
 * Images name the tuned UNet by its store key: the same on every worker, and no worker's paths.
 */
export async function generatorSource(deps: ActivityDependencies, base: string, tunedUnet: string | null): Promise<GeneratorSource> {
  if (tunedUnet === null) return { base };
  const prefix = tunedUnet.endsWith('/') ? tunedUnet : `${tunedUnet}/`;
  const local = join(deps.workDir, 'models', ...prefix.split('/'));
  for (const key of await deps.store.list(`${prefix}unet/`)) {
    const target = join(local, ...key.slice(prefix.length).split('/'));
    if (!existsSync(target)) await deps.store.getFile(key, target);
  }
  return { base, tunedUnet: local, tunedUnetName: prefix };
}
