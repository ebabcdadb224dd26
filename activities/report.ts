import type { ReportRequest, ReportResult } from '../contract/activities.js';
import { artifactKeys } from '../contract/keys.js';
import type { EvaluationRecord, JudgeManifest, PromptScores } from '../contract/records.js';
import { findJson, getJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { reportHtml, reportImageKeys } from './reportPage.js';
import { roundInput } from './input.js';

/** Best, worst and side-by-side images shown per section. */
const SHOWN = 8;

async function required<T>(deps: ActivityDependencies, key: string, stage: string): Promise<T> {
  const value = await findJson<T>(deps.store, key);
  if (value === null) throw badData('MissingArtifact', `${key}: not found; the ${stage} stage must finish before the report`);
  return value;
}

/** Writes the round's report, one self-contained HTML file, as a single (atomic) artifact. */
export function createWriteReport(deps: ActivityDependencies) {
  return async function writeReport({ root, inputKey, run, judged, dataset, training, evaluation, gate }: ReportRequest): Promise<ReportResult> {
    const input = await roundInput(deps, inputKey);
    const key = artifactKeys.report(root);
    if (!(await deps.store.exists(key))) {
      const scores: PromptScores[] = [];
      for (const manifestKey of judged) {
        const manifest = await required<JudgeManifest>(deps, manifestKey, 'judge');
        for (const record of manifest.records) scores.push(await getJson<PromptScores>(deps.store, record));
      }
      const records = await Promise.all((await deps.store.list(`${root}/evaluation/pairs/`)).map((k) => getJson<EvaluationRecord>(deps.store, k)));
      const images = new Map<string, Uint8Array>();
      for (const image of reportImageKeys(scores, records, SHOWN)) images.set(image, await deps.store.get(image));
      const html = reportHtml({ run, input, scores, curation: dataset, training, evaluation, gate, evaluationRecords: records, images }, SHOWN);
      await deps.store.put(key, html);
    }
    return { report: key, location: deps.store.locate(key) };
  };
}
