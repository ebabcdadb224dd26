import type { JudgeSettings } from '../config/round.js';
import type { JudgeRequest, JudgeShardResult } from '../contract/activities.js';
import { artifactKeys } from '../contract/keys.js';
import type { ImageScore, JudgeManifest, PromptScores, SampledImage, SampleManifest, SamplePrompt } from '../contract/records.js';
import { decodeImage } from '../models/judge/index.js';
import { findJson, getJson, putJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { withProgress } from './progress.js';
import { roundInput } from './input.js';
import { readSampled } from './sampleCache.js';

function detectedCount(records: readonly PromptScores[], threshold: number): number {
  return records.reduce((n, r) => n + r.images.filter((i) => i.detection >= threshold).length, 0);
}

/** Judges one prompt's images together (the judge compares them with the prompt's class) and stores the record. */
async function scorePrompt(
  deps: ActivityDependencies,
  settings: JudgeSettings,
  prompt: SamplePrompt,
  images: readonly SampledImage[],
  recordKey: string,
): Promise<PromptScores> {
  return deps.runtime.withJudge(settings, async (judge) => {
    const decoded = await Promise.all(images.map((image) => readSampled(deps, image.key, (bytes) => decodeImage(bytes, image.key))));
    const started = performance.now();
    const verdict = await judge.judge(prompt.text, prompt.className, decoded);
    deps.metrics.imageSeconds.record((performance.now() - started) / 1000 / Math.max(1, images.length), { stage: 'judge' });
    const scores: ImageScore[] = verdict.judgements.map((j, i) => ({
      key: images[i]!.key,
      seed: images[i]!.seed,
      detection: j.detection.confidence,
      instances: j.detection.instances,
      statedCount: j.detection.statedCount,
      countMatches: j.detection.countMatches,
      caption: j.caption?.caption ?? null,
      checklist: j.checklist,
      clip: j.clip?.score100 ?? 0,
      combined: j.combined,
    }));
    const record: PromptScores = { ...prompt, images: scores };
    await putJson(deps.store, recordKey, record);
    const labels = { class: prompt.className };
    deps.metrics.imagesJudged.record(scores.length, labels);
    deps.metrics.imagesDetected.record(scores.filter((s) => s.detection >= settings.threshold).length, labels);
    return record;
  });
}

/**
 * Judges one shard's images prompt by prompt (the judge compares a prompt's images with its
 * class), writing one score record per prompt with a score per image. A retry skips prompts
 * whose record exists. The manifest is written last. Images come from this worker's sample cache
 * when it sampled them, else from the store; once judged, they leave the cache.
 */
export function createJudgeShard(deps: ActivityDependencies) {
  return async function judgeShard({ root, inputKey, shard, samples: samplesKey }: JudgeRequest): Promise<JudgeShardResult> {
    const input = await roundInput(deps, inputKey);
    const manifestKey = artifactKeys.judgeManifest(root, shard);
    const threshold = input.judge.threshold;
    const done = await findJson<JudgeManifest>(deps.store, manifestKey);
    if (done) {
      const records = await Promise.all(done.records.map((key) => getJson<PromptScores>(deps.store, key)));
      return { shard, manifest: manifestKey, images: records.reduce((n, r) => n + r.images.length, 0), detected: detectedCount(records, threshold) };
    }
    const samples = await findJson<SampleManifest>(deps.store, samplesKey);
    if (!samples) throw badData('MissingArtifact', `${samplesKey}: not found; the shard must be sampled before it is judged`);

    const records: PromptScores[] = [];
    let judged = 0;
    await withProgress({ stage: 'judge', shard, judged }, async (progress) => {
      for (const prompt of samples.prompts) {
        const recordKey = artifactKeys.scoreRecord(root, shard, prompt.promptIndex);
        const images = samples.images.filter((image) => image.promptIndex === prompt.promptIndex);
        progress.checkCancelled();
        const record = (await findJson<PromptScores>(deps.store, recordKey)) ?? (await scorePrompt(deps, input.judge, prompt, images, recordKey));
        records.push(record);
        judged += images.length;
        progress.report({ stage: 'judge', shard, judged });
      }
    });
    await putJson(deps.store, manifestKey, {
      shard,
      records: records.map((r) => artifactKeys.scoreRecord(root, shard, r.promptIndex)),
    } satisfies JudgeManifest);
    await deps.sampleCache?.delete(samples.images.map((image) => image.key));
    return { shard, manifest: manifestKey, images: judged, detected: detectedCount(records, threshold) };
  };
}
