import { existsSync } from 'node:fs';
import { join } from 'node:path';

import type { RoundInput } from '../config/round.js';
import { findJson, putJson } from '../store/store.js';
import { loadPrompts, withProgress, type ActivityDependencies } from './dependencies.js';
import { samplePngs } from './images.js';
import { artifactKeys, shardPromptIndices, trainingSeed } from './keys.js';
import type { SampledImage, SampleManifest, SamplePrompt, SampleShardResult } from './types.js';

export interface ShardRequest {
  /** The round's artifact folder (`roundRoot`). */
  readonly root: string;
  readonly input: RoundInput;
  readonly shard: number;
}

function summary(root: string, manifest: SampleManifest): SampleShardResult {
  return {
    shard: manifest.shard,
    manifest: artifactKeys.sampleManifest(root, manifest.shard),
    prompts: manifest.prompts.length,
    images: manifest.images.length,
    classes: [...new Set(manifest.prompts.map((p) => p.className))],
  };
}

/**
 * A generator to load: the base folder, or the base with a tuned UNet fetched from the store into
 * the work folder. Published artifacts never change, so a file already fetched is not fetched again.
 */
export async function generatorSource(deps: ActivityDependencies, base: string, tunedUnet: string | null): Promise<{ base: string; tunedUnet?: string }> {
  if (tunedUnet === null) return { base };
  const prefix = tunedUnet.endsWith('/') ? tunedUnet : `${tunedUnet}/`;
  const local = join(deps.workDir, 'models', ...prefix.split('/'));
  for (const key of await deps.store.list(`${prefix}unet/`)) {
    const target = join(local, ...key.slice(prefix.length).split('/'));
    if (!existsSync(target)) await deps.store.getFile(key, target);
  }
  return { base, tunedUnet: local };
}

/**
 * Samples `samplesPerPrompt` images for each training prompt of one shard. Each image is stored
 * as soon as it exists, with one heartbeat per image; a retry skips the images already stored,
 * so it resumes after the last one. The manifest is written last.
 */
export function createSampleShard(deps: ActivityDependencies) {
  return async function sampleShard({ root, input, shard }: ShardRequest): Promise<SampleShardResult> {
    const manifestKey = artifactKeys.sampleManifest(root, shard);
    const existing = await findJson<SampleManifest>(deps.store, manifestKey);
    if (existing) return summary(root, existing);

    const prompts = await loadPrompts(input.prompts, 'prompts');
    const mine: SamplePrompt[] = shardPromptIndices(prompts.length, input.shards, shard).map((promptIndex) => ({ ...prompts[promptIndex]!, promptIndex }));
    const images: SampledImage[] = mine.flatMap(({ promptIndex }) =>
      Array.from({ length: input.samplesPerPrompt }, (_, k) => ({
        key: artifactKeys.sampledImage(root, shard, promptIndex, k),
        promptIndex,
        k,
        seed: trainingSeed(input.sampling.seed, input.samplesPerPrompt, promptIndex, k),
      })),
    );
    const stored = new Set(await deps.store.list(artifactKeys.sampleFolder(root, shard)));
    let sampled = images.filter((image) => stored.has(image.key)).length;

    if (sampled < images.length) {
      await withProgress({ stage: 'sample', shard, sampled }, async (progress) => {
        const source = await generatorSource(deps, input.generator.base, input.generator.tunedUnet);
        await deps.runtime.withGenerator(source, async (generator) => {
          for (const prompt of mine) {
            const missing = images.filter((image) => image.promptIndex === prompt.promptIndex && !stored.has(image.key));
            if (missing.length === 0) continue;
            progress.checkCancelled();
            const pngs = await samplePngs(
              generator,
              input.sampling,
              prompt,
              missing.map((m) => m.seed),
              () => progress.report({ stage: 'sample', shard, sampled }),
            );
            for (const [i, image] of missing.entries()) {
              await deps.store.put(image.key, pngs[i]!);
              sampled += 1;
              progress.report({ stage: 'sample', shard, sampled });
            }
          }
        });
      });
    }
    const manifest: SampleManifest = { shard, prompts: mine, images };
    await putJson(deps.store, manifestKey, manifest);
    return summary(root, manifest);
  };
}
