import type { CurateRequest, CurateResult } from '../contract/activities.js';
import { artifactKeys } from '../contract/keys.js';
import type { JudgeManifest, PromptScores } from '../contract/records.js';
import { findJson, getJson, putJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { withProgress } from './progress.js';
import { curate, metadataRow } from './selection.js';
import { roundInput } from './input.js';
import { validationPrompts } from './validate.js';

/** One row of an imagefolder dataset's metadata.jsonl: the image's file name, its caption and what curation kept of it. */
interface MetadataRow {
  readonly file_name: string;
  readonly class?: string;
  readonly [field: string]: unknown;
}

/**
 * Copies an earlier round's curated dataset into this one: each image under a name of its own
 * (`included-<i>-<name>`), each metadata row with that name and where it came from. Rows whose
 * caption is a withheld validation prompt's are left out, image and all.
 */
async function includeDataset(
  deps: ActivityDependencies,
  root: string,
  index: number,
  prefix: string,
  withheld: ReadonlySet<string>,
): Promise<{ rows: string[]; classes: string[]; left: number }> {
  const folder = prefix.endsWith('/') ? prefix : `${prefix}/`;
  const metadataKey = `${folder}metadata.jsonl`;
  const text = await deps.store.get(metadataKey).then(
    (bytes) => bytes.toString('utf8'),
    () => {
      throw badData('MissingArtifact', `${metadataKey}: not found; expected a curated dataset (images and metadata.jsonl) at ${folder}`);
    },
  );
  const rows: string[] = [];
  const classes: string[] = [];
  let left = 0;
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let row: MetadataRow;
    try {
      row = JSON.parse(line) as MetadataRow;
    } catch {
      throw badData('BadArtifact', `${metadataKey}:${i + 1}: not a JSON object`);
    }
    if (typeof row.file_name !== 'string' || row.file_name.includes('/') || row.file_name.startsWith('.')) {
      throw badData('BadArtifact', `${metadataKey}:${i + 1}: expected "file_name" of an image in the dataset's folder`);
    }
    if (typeof row['text'] === 'string' && withheld.has(row['text'])) {
      left += 1;
      continue;
    }
    const key = artifactKeys.includedImage(root, index, row.file_name);
    await deps.store.put(key, await deps.store.get(`${folder}${row.file_name}`));
    rows.push(JSON.stringify({ ...row, file_name: key.slice(key.lastIndexOf('/') + 1), included_from: folder }));
    if (typeof row.class === 'string') classes.push(row.class);
  }
  return { rows, classes, left };
}

/**
 * Applies the selection rule to every judged prompt and writes the dataset in the imagefolder
 * layout: the kept images of each prompt and those of the included earlier datasets,
 * `metadata.jsonl` (file_name, text, class, scores), then the curation manifest with per-class
 * kept/dropped counts and reasons, last.
 */
export function createCurateDataset(deps: ActivityDependencies) {
  return async function curateDataset({ root, inputKey, judged, include }: CurateRequest): Promise<CurateResult> {
    const input = await roundInput(deps, inputKey);
    const manifestKey = artifactKeys.curateManifest(root);
    const existing = await findJson<CurateResult & { drops: unknown }>(deps.store, manifestKey);
    if (existing) {
      // The manifest also lists every drop; the workflow gets the counts only.
      const { drops: _drops, ...result } = existing;
      return result;
    }

    // Several LoRAs are chosen between on training prompts none of them trains on: by text, so an
    // included dataset's images of the same prompt (a model line's earlier nights) stay out too.
    const validation = await validationPrompts(input);
    const withheld = new Set((validation ?? []).map((p) => p.text));
    let imagesWithheld = 0;
    const records: PromptScores[] = [];
    for (const key of judged) {
      const manifest = await findJson<JudgeManifest>(deps.store, key);
      if (!manifest) throw badData('MissingArtifact', `${key}: not found; every shard must be judged before curation`);
      for (const recordKey of manifest.records) {
        const record = await getJson<PromptScores>(deps.store, recordKey);
        if (withheld.has(record.text)) imagesWithheld += record.images.length;
        else records.push(record);
      }
    }
    const curation = curate(records, input.selection, input.judge.threshold);
    if (curation.kept.length === 0 && include.length === 0) {
      throw badData(
        'BadTrainingInput',
        `no prompt kept an image (${curation.dropped.length} dropped: ${[...new Set(curation.dropped.map((d) => d.reason))].join('; ')}); nothing to train on`,
      );
    }
    const rows: string[] = [];
    const perClass = new Map(Object.entries(curation.perClass).map(([name, counts]) => [name, { ...counts }]));
    let included = 0;
    await withProgress({ stage: 'curate' }, async (progress) => {
      for (const kept of curation.kept) {
        progress.checkCancelled();
        const key = artifactKeys.datasetImage(root, kept.prompt.promptIndex, kept.sampleIndex);
        await deps.store.put(key, await deps.store.get(kept.image.key));
        rows.push(JSON.stringify(metadataRow(key.slice(key.lastIndexOf('/') + 1), kept)));
      }
      for (const [index, prefix] of include.entries()) {
        progress.checkCancelled();
        const earlier = await includeDataset(deps, root, index, prefix, withheld);
        imagesWithheld += earlier.left;
        rows.push(...earlier.rows);
        included += earlier.rows.length;
        for (const name of earlier.classes) {
          const counts = perClass.get(name) ?? { kept: 0, dropped: 0, reasons: {} };
          perClass.set(name, { ...counts, kept: counts.kept + 1 });
        }
      }
    });
    await deps.store.put(artifactKeys.datasetMetadata(root), `${rows.join('\n')}\n`);
    const result: CurateResult = {
      manifest: manifestKey,
      dataset: artifactKeys.dataset(root),
      kept: rows.length,
      included,
      dropped: curation.dropped.length,
      perClass: Object.fromEntries(perClass),
      ...(validation === null ? {} : { withheld: { prompts: validation.length, images: imagesWithheld } }),
    };
    await putJson(deps.store, manifestKey, {
      ...result,
      drops: curation.dropped.map((d) => ({ promptIndex: d.prompt.promptIndex, className: d.prompt.className, text: d.prompt.text, reason: d.reason })),
    });
    for (const [name, counts] of Object.entries(curation.perClass)) {
      deps.metrics.imagesKept.record(counts.kept, { class: name });
      deps.metrics.promptsDropped.record(counts.dropped, { class: name });
    }
    return result;
  };
}
