import type { CurateResult, EvaluateResult, ReportRequest, ReportResult, TrainResult } from '../contract/activities.js';
import { artifactKeys } from '../contract/keys.js';
import type { EvaluationRecord, JudgeManifest, PromptScores } from '../contract/records.js';
import { findJson, getJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { reportHtml, reportImageKeys } from './reportPage.js';

/** Best, worst and side-by-side images shown per section. */
const SHOWN = 8;

async function required<T>(deps: ActivityDependencies, key: string, stage: string): Promise<T> {
  const value = await findJson<T>(deps.store, key);
  if (value === null) throw badData('MissingArtifact', `${key}: not found; the ${stage} stage must finish before the report`);
  return value;
}

/** Writes the round's report, one self-contained HTML file, as a single (atomic) artifact. */
export function createWriteReport(deps: ActivityDependencies) {
  return async function writeReport({ root, input, workflowId }: ReportRequest): Promise<ReportResult> {
    const key = artifactKeys.report(root);
    if (!(await deps.store.exists(key))) {
      const scores: PromptScores[] = [];
      for (let shard = 0; shard < input.shards; shard++) {
        const manifest = await required<JudgeManifest>(deps, artifactKeys.judgeManifest(root, shard), 'judge');
        for (const record of manifest.records) scores.push(await getJson<PromptScores>(deps.store, record));
      }
      const evaluation = await required<EvaluateResult>(deps, artifactKeys.evaluateManifest(root), 'evaluate');
      const records = await Promise.all((await deps.store.list(`${root}/evaluation/pairs/`)).map((k) => getJson<EvaluationRecord>(deps.store, k)));
      const images = new Map<string, Uint8Array>();
      for (const image of reportImageKeys(scores, records, SHOWN)) images.set(image, await deps.store.get(image));
      const html = reportHtml(
        {
          workflowId,
          input,
          scores,
          curation: await required<CurateResult>(deps, artifactKeys.curateManifest(root), 'curate'),
          training: await required<TrainResult>(deps, artifactKeys.trainManifest(root), 'train'),
          evaluation,
          evaluationRecords: records,
          images,
        },
        SHOWN,
      );
      await deps.store.put(key, html);
    }
    return { report: key, location: deps.store.locate(key) };
  };
}
