/**
 * Log lines that say which round they are about. The SDK's activity logger already adds the
 * workflow, run, activity and attempt; an activity interceptor adds the round, stage and shard
 * read off the activity's request. `LOG_FIELDS` is the documented set (README, and a test that
 * reads a real round's log).
 */
import type { ActivityInterceptorsFactory, LogEntry } from '@temporalio/worker';

import { roundOfRoot } from '../contract/keys.js';
import type { Stage } from '../contract/progress.js';
import type { Activities } from '../contract/workers.js';

/** The fields of an activity's log lines (besides the SDK's `namespace`, `taskQueue`, `activityId`, `isLocal`). */
export const LOG_FIELDS = {
  workflowId: 'the round, night or line workflow the activity runs for (SDK)',
  workflowRunId: 'its run (SDK)',
  workflowType: 'selfRewardRound, selfRewardNightly or selfRewardLine (SDK)',
  activityType: 'the activity: sampleShard, trainLora, ... (SDK)',
  attempt: 'the attempt, from 1 (SDK)',
  round: "the round's number, for a round's stages",
  stage: 'the stage: prepare, sample, judge, curate, train, validate, evaluate, report, or line',
  shard: 'the shard, for sample, judge and a shard of the evaluation',
} as const;

const STAGES: { readonly [K in keyof Activities]: Stage | 'line' } = {
  prepareRound: 'prepare',
  sampleShard: 'sample',
  judgeShard: 'judge',
  curateDataset: 'curate',
  trainLora: 'train',
  joinTraining: 'train',
  sampleReferences: 'evaluate',
  evaluateShard: 'evaluate',
  evaluateRound: 'evaluate',
  sampleValidationBase: 'validate',
  validateLora: 'validate',
  writeReport: 'report',
  loadLine: 'line',
  recordLineEvent: 'line',
  readLineEvent: 'line',
  readChampion: 'line',
  openLine: 'line',
  submitChallenger: 'line',
};

/** The round, stage and shard of an activity's request, as log fields. */
export function activityLogFields(activityType: string, request: unknown): Record<string, string | number> {
  const fields: Record<string, string | number> = {};
  const stage = (STAGES as Readonly<Record<string, string>>)[activityType];
  if (stage !== undefined) fields['stage'] = stage;
  const { root, shard } = (typeof request === 'object' && request !== null ? request : {}) as { root?: unknown; shard?: unknown };
  const round = typeof root === 'string' ? roundOfRoot(root) : null;
  if (round !== null) fields['round'] = round;
  if (typeof shard === 'number') fields['shard'] = shard;
  return fields;
}

/** Adds the round, stage and shard to every log line an activity writes through its context's logger. */
export const logFieldsInterceptor: ActivityInterceptorsFactory = (ctx) => {
  let fields: Record<string, string | number> = {};
  return {
    inbound: {
      execute: (input, next) => {
        fields = activityLogFields(ctx.info.activityType, input.args[0]);
        return next(input);
      },
    },
    outbound: { getLogAttributes: (attributes, next) => next({ ...attributes, ...fields }) },
  };
};

/** One JSON object per line: time, level, message and the entry's fields. */
export function jsonLogLine(entry: LogEntry): string {
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  return JSON.stringify({ time, level: entry.level, message: entry.message, ...entry.meta });
}
