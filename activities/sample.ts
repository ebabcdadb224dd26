import type { SampleShardResult, ShardRequest } from '../contract/activities.js';
import { artifactKeys, shardPromptIndices, trainingSeed } from '../contract/keys.js';
import type { SampledImage, SampleManifest, SamplePrompt } from '../contract/records.js';
import { findJson, putJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { withProgress } from './progress.js';
import { loadPrompts } from './prompts.js';
import { generatorSource, samplePngs } from './sampling.js';
import { roundInput } from './input.js';
import { validationPrompts } from './validate.js';

function summary(root: string, manifest: SampleManifest, workerQueue: string | undefined): SampleShardResult {
  return {
    shard: manifest.shard,
    manifest: artifactKeys.sampleManifest(root, manifest.shard),
    prompts: manifest.prompts.length,
    images: manifest.images.length,
    classes: [...new Set(manifest.prompts.map((p) => p.className))],
    ...(workerQueue === undefined ? {} : { workerQueue }),
  };
}

/**
 * Samples `samplesPerPrompt` images for each training prompt of one shard (but those withheld for
 * validation, `lora.seeds` > 1). Each image is stored
 * as soon as it exists, with one heartbeat per image; a retry skips the images already stored,
 * so it resumes after the last one. The manifest is written last. Each image is also kept in the
 * worker's sample cache, and the result names the worker's own queue, where the shard's judge
 * finds them.
 */
export function createSampleShard(deps: ActivityDependencies) {
  return async function sampleShard({ root, inputKey, shard }: ShardRequest): Promise<SampleShardResult> {
    const input = await roundInput(deps, inputKey);
    const manifestKey = artifactKeys.sampleManifest(root, shard);
    const existing = await findJson<SampleManifest>(deps.store, manifestKey);
    if (existing) return summary(root, existing, deps.workerQueue);

    if (input.prompts === null) throw badData('InvalidInput', 'prompts: a round that samples needs its training prompts');
    const prompts = await loadPrompts(input.prompts, 'prompts');
    // The prompts withheld to choose between several LoRAs are never trained on: sampling them would be wasted.
    const withheld = new Set((await validationPrompts(input))?.map((p) => p.promptIndex));
    const mine: SamplePrompt[] = shardPromptIndices(prompts.length, input.shards, shard)
      .filter((promptIndex) => !withheld.has(promptIndex))
      .map((promptIndex) => ({ ...prompts[promptIndex]!, promptIndex }));
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
            const started = performance.now();
            const pngs = await samplePngs(
              generator,
              input.sampling,
              prompt,
              missing.map((m) => m.seed),
              () => progress.report({ stage: 'sample', shard, sampled }),
            );
            deps.metrics.imageSeconds.record((performance.now() - started) / 1000 / missing.length, { stage: 'sample' });
            deps.metrics.imagesSampled.record(missing.length, { class: prompt.className });
            for (const [i, image] of missing.entries()) {
              await deps.store.put(image.key, pngs[i]!);
              // Only once the store holds them: the cached bytes are then the published ones.
              await deps.sampleCache?.put(image.key, pngs[i]!);
              sampled += 1;
              progress.report({ stage: 'sample', shard, sampled });
            }
          }
        });
      });
    }
    const manifest: SampleManifest = { shard, prompts: mine, images };
    await putJson(deps.store, manifestKey, manifest);
    return summary(root, manifest, deps.workerQueue);
  };
}
