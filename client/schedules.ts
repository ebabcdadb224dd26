/**
 * Nightly schedules: a Temporal Schedule whose action starts `selfRewardNightly` with a model
 * line's input. The options here are what `selfreward schedule create` and scripts give; the
 * schedule itself is Temporal's, so the Web UI's Schedules page and the `temporal` CLI show and
 * manage it too.
 */
import type { Duration } from '@temporalio/common';
import type { ScheduleOptions, ScheduleOptionsStartWorkflowAction, ScheduleOverlapPolicy } from '@temporalio/client';

import type { NightlyInput } from '../config/nightly.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { TASK_QUEUES } from '../contract/workers.js';
import { selfRewardNightly } from '../workflows/index.js';

export const OVERLAP_POLICIES = [
  'SKIP',
  'BUFFER_ONE',
  'BUFFER_ALL',
  'CANCEL_OTHER',
  'TERMINATE_OTHER',
  'ALLOW_ALL',
] as const satisfies readonly ScheduleOverlapPolicy[];

export interface NightlyScheduleOptions {
  /** Default `line-<line>-nightly`. */
  readonly scheduleId?: string;
  /** Cron expressions (`0 2 * * *`: 02:00 each day), in `timezone`. */
  readonly cron?: readonly string[];
  /** Or an interval (`30s`, `6h`). */
  readonly every?: Duration;
  /** IANA time zone of the cron expressions, e.g. `Europe/Paris`; default UTC. */
  readonly timezone?: string;
  /** What a firing does while the previous night still runs; default SKIP. */
  readonly overlap?: ScheduleOverlapPolicy;
  /** How late a missed firing (the server was down) may still start; default 1 hour. */
  readonly catchupWindow?: Duration;
  /** Pause the schedule when a night fails, so a broken line does not fail every night; default true. */
  readonly pauseOnFailure?: boolean;
  readonly note?: string;
  readonly paused?: boolean;
}

export function nightlyScheduleId(line: string): string {
  return `line-${line}-nightly`;
}

/** The Temporal schedule for a line's nights (validated input in its action, the line in its memo). */
export function nightlySchedule(
  input: NightlyInput,
  options: NightlyScheduleOptions,
): ScheduleOptions<ScheduleOptionsStartWorkflowAction<typeof selfRewardNightly>> {
  if ((options.cron === undefined) === (options.every === undefined))
    throw new Error('a nightly schedule needs either cron expressions or an interval, not both');
  return {
    scheduleId: options.scheduleId ?? nightlyScheduleId(input.line),
    spec: {
      ...(options.cron === undefined ? {} : { cronExpressions: [...options.cron] }),
      ...(options.every === undefined ? {} : { intervals: [{ every: options.every }] }),
      ...(options.timezone === undefined ? {} : { timezone: options.timezone }),
    },
    action: {
      type: 'startWorkflow',
      workflowType: selfRewardNightly,
      args: [input],
      taskQueue: TASK_QUEUES.workflows,
      // The server appends the firing time: night-<line>-2026-12-06T02:00:00Z.
      workflowId: `night-${input.line}`,
      memo: { line: input.line },
      typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.line, value: input.line }],
    },
    policies: { overlap: options.overlap ?? 'SKIP', catchupWindow: options.catchupWindow ?? '1h', pauseOnFailure: options.pauseOnFailure ?? true },
    state: { note: options.note ?? `nightly self-improvement of model line "${input.line}"`, paused: options.paused ?? false },
    // The server keeps cron expressions as calendars; the memo keeps them as they were written.
    memo: { line: input.line, when: scheduleWhen(options) },
  };
}

/** When a schedule fires, as its options say it: `0 2 * * * (Europe/Paris)` or `every 6h`. */
export function scheduleWhen(options: NightlyScheduleOptions): string {
  if (options.every !== undefined) return `every ${String(options.every)}`;
  return `${(options.cron ?? []).join(', ')}${options.timezone === undefined ? ' (UTC)' : ` (${options.timezone})`}`;
}
