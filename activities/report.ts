import type { ReportRequest, ReportResult } from '../contract/activities.js';
import { artifactKeys } from '../contract/keys.js';
import type { EvaluationRecord, JudgeManifest, PromptScores } from '../contract/records.js';
import { findJson, findText, getJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { reportHtml } from './reportPage.js';
import { lossCurve } from './trainerMetrics.js';
import { roundInput } from './input.js';

/** Best and worst samples, and base-versus-tuned pairs in the grid, shown per section. */
const SHOWN = 8;

async function required<T>(deps: ActivityDependencies, key: string, stage: string): Promise<T> {
  const value = await findJson<T>(deps.store, key);
  if (value === null) throw badData('MissingArtifact', `${key}: not found; the ${stage} stage must finish before the report`);
  return value;
}

/**
 * Writes the round's report, one HTML file, as a single (atomic) artifact. Its images are not
 * copied or inlined: the page links to the round's stored PNGs by relative URL (`reportLinks.ts`),
 * which resolves the same in the local folder and in the S3 bucket.
 */
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
      const losses = lossCurve(await findText(deps.store, `${training.lora}metrics.json`));
      const html = reportHtml(
        { page: key, run, input, scores, curation: dataset, training, lossCurve: losses, evaluation, gate, evaluationRecords: records },
        SHOWN,
      );
      await deps.store.put(key, html);
    }
    return { report: key, location: deps.store.locate(key) };
  };
}
