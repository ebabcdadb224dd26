import type { CurateResult, RoundRequest } from '../contract/activities.js';
import { artifactKeys } from '../contract/keys.js';
import type { JudgeManifest, PromptScores } from '../contract/records.js';
import { findJson, getJson, putJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { withProgress } from './progress.js';
import { curate, metadataRow } from './selection.js';

/**
 * Applies the selection rule to every judged prompt and writes the dataset in the imagefolder
 * layout: the kept images of each prompt, `metadata.jsonl` (file_name, text, class, scores), then the
 * curation manifest with per-class kept/dropped counts and reasons, last.
 */
export function createCurateDataset(deps: ActivityDependencies) {
  return async function curateDataset({ root, input }: RoundRequest): Promise<CurateResult> {
    const manifestKey = artifactKeys.curateManifest(root);
    const existing = await findJson<CurateResult & { drops: unknown }>(deps.store, manifestKey);
    if (existing) {
      // The manifest also lists every drop; the workflow gets the counts only.
      const { drops: _drops, ...result } = existing;
      return result;
    }

    const records: PromptScores[] = [];
    for (let shard = 0; shard < input.shards; shard++) {
      const manifest = await findJson<JudgeManifest>(deps.store, artifactKeys.judgeManifest(root, shard));
      if (!manifest) throw badData('MissingArtifact', `${artifactKeys.judgeManifest(root, shard)}: not found; every shard must be judged before curation`);
      for (const key of manifest.records) records.push(await getJson<PromptScores>(deps.store, key));
    }
    const curation = curate(records, input.selection, input.judge.threshold);
    if (curation.kept.length === 0) {
      throw badData(
        'BadTrainingInput',
        `no prompt kept an image (${curation.dropped.length} dropped: ${[...new Set(curation.dropped.map((d) => d.reason))].join('; ')}); nothing to train on`,
      );
    }
    const rows: string[] = [];
    await withProgress({ stage: 'curate' }, async (progress) => {
      for (const kept of curation.kept) {
        progress.checkCancelled();
        const key = artifactKeys.datasetImage(root, kept.prompt.promptIndex, kept.sampleIndex);
        await deps.store.put(key, await deps.store.get(kept.image.key));
        rows.push(JSON.stringify(metadataRow(key.slice(key.lastIndexOf('/') + 1), kept)));
      }
    });
    await deps.store.put(artifactKeys.datasetMetadata(root), `${rows.join('\n')}\n`);
    const result: CurateResult = {
      manifest: manifestKey,
      dataset: artifactKeys.dataset(root),
      kept: curation.kept.length,
      dropped: curation.dropped.length,
      perClass: curation.perClass,
    };
    await putJson(deps.store, manifestKey, {
      ...result,
      drops: curation.dropped.map((d) => ({ promptIndex: d.prompt.promptIndex, className: d.prompt.className, text: d.prompt.text, reason: d.reason })),
    });
    return result;
  };
}
