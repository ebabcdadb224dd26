/**
 * A finished round's evaluation and report in a store, as the evaluate and report activities
 * leave them (same keys, records and report writer), with small real PNGs instead of sampled
 * images: what `selfreward review` reads, without running a round.
 */
import { createWriteReport } from '../activities/report.js';
import { evaluationFigures } from '../activities/evaluate.js';
import { artifactKeys, evaluationSeed, roundRoot } from '../contract/keys.js';
import type { EvaluationRecord } from '../contract/records.js';
import type { EvaluateResult } from '../contract/activities.js';
import { encodePng } from '../models/png.js';
import { putJson, type ArtifactStore } from '../store/store.js';
import { roundInputWith, storedInput, storeOnlyDependencies } from './activity.js';

export interface ReviewFixture {
  readonly root: string;
  readonly records: readonly EvaluationRecord[];
}

/** A flat 8x8 image whose grey level says which generator, prompt and seed drew it. */
function image(side: 'base' | 'tuned', promptIndex: number, s: number): Promise<Buffer> {
  const level = (side === 'base' ? 40 : 160) + 10 * promptIndex + s;
  // The text entries a sampled image carries: the tuned one names its LoRA, which the page must never show.
  const generator = side === 'base' ? '/models/shapes' : '/models/shapes + unet runs/wf/run/round-001/lora/';
  return encodePng({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(level) }, { prompt: `prompt ${promptIndex}`, generator });
}

export async function writeReviewFixture(store: ArtifactStore, { workflowId = 'review-round', prompts = 2, seeds = 2 } = {}): Promise<ReviewFixture> {
  const root = roundRoot(workflowId, 'run-1', 1);
  const input = roundInputWith({ evaluation: { prompts: { file: 'e' }, seedsPerPrompt: seeds } });
  const records: EvaluationRecord[] = [];
  for (let promptIndex = 0; promptIndex < prompts; promptIndex++) {
    const seedList = Array.from({ length: seeds }, (_, s) => evaluationSeed(input.evaluation.seed, promptIndex, s));
    const scores = async (side: 'base' | 'tuned') => {
      const out = [];
      for (let s = 0; s < seeds; s++) {
        const key = artifactKeys.evaluationImage(root, side, promptIndex, s);
        await store.put(key, await image(side, promptIndex, s));
        out.push({ key, clip: side === 'base' ? 20 : 21 + s, detection: side === 'base' ? 0.4 : 0.7 });
      }
      return out;
    };
    const record: EvaluationRecord = {
      promptIndex,
      className: 'circle',
      text: `a circle, prompt ${promptIndex}`,
      seeds: seedList,
      base: await scores('base'),
      parent: null,
      tuned: await scores('tuned'),
    };
    await putJson(store, artifactKeys.evaluationRecord(root, promptIndex), record);
    records.push(record);
  }
  const evaluation: EvaluateResult = { manifest: artifactKeys.evaluateManifest(root), ...evaluationFigures(records, input.judge.threshold, 200) };
  await putJson(store, evaluation.manifest, evaluation);
  await createWriteReport(storeOnlyDependencies(store))({
    root,
    inputKey: await storedInput(store, root, input),
    run: { workflowId, runId: 'run-1', resetFrom: null },
    judged: [],
    dataset: { manifest: artifactKeys.curateManifest(root), dataset: artifactKeys.dataset(root), kept: 0, included: 0, dropped: 0, perClass: {} },
    training: { manifest: artifactKeys.trainManifest(root), lora: artifactKeys.lora(root), steps: 10, finalLoss: 0.1 },
    evaluation,
    gate: null,
  });
  return { root, records };
}
