/**
 * Every metric the workers export, in one table: the activities record through the instruments
 * `createMetrics` builds from it, the README's metrics reference is written from it, and the
 * deployment's dashboard and alert rules are checked against it (and against the SDK's own
 * metrics below) by a test. Labels are bounded sets: a class, a stage, an activity, a failure
 * type, a line; never a prompt, a workflow id or a key.
 */
import type { MetricMeter, MetricTags } from '@temporalio/common';

import { FAILURE_TYPES } from '../contract/failures.js';

export type Instrument = 'counter' | 'histogram' | 'gauge';

export interface MetricSpec {
  /** The name Prometheus scrapes (counters end in `_total`). */
  readonly name: string;
  readonly instrument: Instrument;
  /** The labels it is recorded with, besides the worker's own (`role`, `device`). */
  readonly labels: readonly string[];
  readonly unit: string;
  readonly meaning: string;
  /** Histogram bucket bounds, in the metric's unit. */
  readonly buckets?: readonly number[];
}

const SECONDS_PER_IMAGE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const METRICS = {
  imagesSampled: {
    name: 'selfreward_images_sampled_total',
    instrument: 'counter',
    labels: ['class'],
    unit: 'images',
    meaning: 'images sampled for training prompts',
  },
  imagesJudged: { name: 'selfreward_images_judged_total', instrument: 'counter', labels: ['class'], unit: 'images', meaning: 'images judged' },
  imagesDetected: {
    name: 'selfreward_images_detected_total',
    instrument: 'counter',
    labels: ['class'],
    unit: 'images',
    meaning: "judged images in which the detector found the prompt's class",
  },
  imagesKept: {
    name: 'selfreward_images_kept_total',
    instrument: 'counter',
    labels: ['class'],
    unit: 'images',
    meaning: 'images curation kept for training',
  },
  promptsDropped: {
    name: 'selfreward_prompts_dropped_total',
    instrument: 'counter',
    labels: ['class'],
    unit: 'prompts',
    meaning: 'prompts that kept no image',
  },
  imageSeconds: {
    name: 'selfreward_image_seconds',
    instrument: 'histogram',
    labels: ['stage'],
    unit: 'seconds',
    meaning: 'model time per image: `sample`, `validate` and `evaluate` (sampling), `judge`',
    buckets: SECONDS_PER_IMAGE,
  },
  trainerSteps: { name: 'selfreward_trainer_steps_total', instrument: 'counter', labels: [], unit: 'steps', meaning: 'LoRA training steps taken' },
  trainerStepSeconds: {
    name: 'selfreward_trainer_step_seconds',
    instrument: 'histogram',
    labels: [],
    unit: 'seconds',
    meaning: 'wall time per training step, as the trainer reports its steps',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  },
  trainerLoss: { name: 'selfreward_trainer_loss', instrument: 'gauge', labels: [], unit: 'loss', meaning: "the trainer's latest reported loss" },
  trainingSeconds: {
    name: 'selfreward_training_seconds',
    instrument: 'histogram',
    labels: ['outcome'],
    unit: 'seconds',
    meaning: 'wall time of one training attempt, by `outcome`: `trained`, `stopped` (cancelled) or `failed`',
    buckets: [10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400],
  },
  evaluationWinRate: {
    name: 'selfreward_evaluation_win_rate',
    instrument: 'gauge',
    labels: [],
    unit: 'ratio',
    meaning: "the latest evaluated round's paired CLIP win rate of tuned over base",
  },
  evaluationAccuracy: {
    name: 'selfreward_evaluation_accuracy',
    instrument: 'gauge',
    labels: ['side'],
    unit: 'ratio',
    meaning: "the latest evaluated round's detector class accuracy, `side` `base` or `tuned`",
  },
  evaluationReferee: {
    name: 'selfreward_evaluation_referee',
    instrument: 'gauge',
    labels: ['check', 'side'],
    unit: 'ratio',
    meaning:
      "the latest evaluated round's referee figures (with `evaluation.referee`), `check` `objectPresent`, `counting`, `colour`, `background`, `allCorrectImages` or `allCorrectPrompts`, `side` `base` or `tuned`",
  },
  evaluationFlaggedClasses: {
    name: 'selfreward_evaluation_flagged_classes',
    instrument: 'gauge',
    labels: [],
    unit: 'classes',
    meaning: "the latest evaluated round's classes that the referee's hacking check flags against the base (with `evaluation.referee`)",
  },
  lineChallengerWinRate: {
    name: 'selfreward_line_challenger_win_rate',
    instrument: 'gauge',
    labels: ['line'],
    unit: 'ratio',
    meaning: "a model line's latest challenger: its win rate against the line's champion",
  },
  lineVerdicts: {
    name: 'selfreward_line_verdicts_total',
    instrument: 'counter',
    labels: ['line', 'verdict'],
    unit: 'challengers',
    meaning: 'challengers a model line judged, `verdict` `promoted` or `rejected`',
  },
  judgeImageReads: {
    name: 'selfreward_judge_image_reads_total',
    instrument: 'counter',
    labels: ['source'],
    unit: 'images',
    meaning:
      "images a judge read, by `source`: `cache` (the worker that sampled them still held them) or `store` (judged on another worker, gone from the worker's cache, or a damaged cached copy)",
  },
  storeBytes: {
    name: 'selfreward_store_bytes_total',
    instrument: 'counter',
    labels: ['op'],
    unit: 'bytes',
    meaning: 'bytes read (`get`) and written (`put`) in the artifact store',
  },
  storeSeconds: {
    name: 'selfreward_store_seconds',
    instrument: 'histogram',
    labels: ['op'],
    unit: 'seconds',
    meaning: 'artifact store call latency, by `op`: `get`, `put`, `list`, `exists`, `delete`',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  },
  activityAttempts: {
    name: 'selfreward_activity_attempts_total',
    instrument: 'counter',
    labels: ['activity'],
    unit: 'attempts',
    meaning: 'activity attempts started (a retry is another attempt)',
  },
  activityFailures: {
    name: 'selfreward_activity_failures_total',
    instrument: 'counter',
    labels: ['activity', 'type'],
    unit: 'attempts',
    meaning: 'activity attempts that failed, by failure `type` (`contract/failures.ts`), `Retryable` or `Cancelled`',
  },
} as const satisfies Readonly<Record<string, MetricSpec>>;

export type MetricKey = keyof typeof METRICS;

/**
 * The Temporal SDK's own metrics that the deployment's dashboard and alerts use (the SDK exports
 * many more: task latencies, slots, polls). Names as scraped with the workers' exporter settings.
 */
export const SDK_METRICS = {
  activityExecutionLatency: 'temporal_activity_execution_latency',
  activityScheduleToStartLatency: 'temporal_activity_schedule_to_start_latency',
  activityExecutionFailed: 'temporal_activity_execution_failed_total',
  workflowEndToEndLatency: 'temporal_workflow_endtoend_latency',
  workflowCompleted: 'temporal_workflow_completed_total',
  workflowFailed: 'temporal_workflow_failed_total',
  workerTaskSlotsAvailable: 'temporal_worker_task_slots_available',
  workerTaskSlotsUsed: 'temporal_worker_task_slots_used',
} as const;

type LabelsOf<K extends MetricKey> = (typeof METRICS)[K]['labels'][number];
type Labels<K extends MetricKey> = [LabelsOf<K>] extends [never] ? Record<string, never> : Record<LabelsOf<K>, string>;

/** One metric's instrument: `record` adds to a counter, records into a histogram or sets a gauge. */
export interface MetricInstrument<K extends MetricKey> {
  record(value: number, labels: Labels<K>): void;
}

export type SelfRewardMetrics = { readonly [K in MetricKey]: MetricInstrument<K> };

/** The SDK meter's name for a metric: counters without `_total`, which the exporter adds. */
export const meterName = (spec: MetricSpec): string => (spec.instrument === 'counter' ? spec.name.replace(/_total$/, '') : spec.name);

/** The exporter's bucket bounds for our histograms. */
export function histogramBuckets(): Record<string, number[]> {
  return Object.fromEntries(
    Object.values(METRICS as Readonly<Record<string, MetricSpec>>).flatMap((spec) => (spec.buckets === undefined ? [] : [[spec.name, [...spec.buckets]]])),
  );
}

/**
 * The instruments, created on first use from `meter()`: a worker's meter exists only once the
 * Temporal runtime is installed, which happens after the activities are built.
 */
export function createMetrics(meter: () => MetricMeter): SelfRewardMetrics {
  const instruments = Object.fromEntries(
    Object.entries(METRICS as Readonly<Record<string, MetricSpec>>).map(([key, spec]) => {
      let record: ((value: number, tags: MetricTags) => void) | undefined;
      const create = (): ((value: number, tags: MetricTags) => void) => {
        const m = meter();
        if (spec.instrument === 'counter') {
          const counter = m.createCounter(meterName(spec), spec.unit, spec.meaning);
          return (value, tags) => counter.add(value, tags);
        }
        if (spec.instrument === 'histogram') {
          const histogram = m.createHistogram(meterName(spec), 'float', spec.unit, spec.meaning);
          return (value, tags) => histogram.record(value, tags);
        }
        const gauge = m.createGauge(meterName(spec), 'float', spec.unit, spec.meaning);
        return (value, tags) => gauge.set(value, tags);
      };
      return [key, { record: (value: number, labels: MetricTags) => (record ??= create())(value, labels) }];
    }),
  );
  return instruments as unknown as SelfRewardMetrics;
}

/** Where a judge reads a sampled image from (`judgeImageReads`). */
export const IMAGE_SOURCES = ['cache', 'store'] as const;

/** How a failed attempt is counted besides its failure type. */
export const OTHER_FAILURES = ['Retryable', 'Cancelled'] as const;

/**
 * Starts the attempt and failure counters of these activities at 0, each failure type included,
 * and a judging worker's image reads from each source:
 * a series exists only once recorded, and `rate()` needs two samples, so without this a worker's
 * first failure of a kind would not count.
 */
export function initializeCounters(metrics: SelfRewardMetrics, activities: readonly string[]): void {
  for (const activity of activities) {
    metrics.activityAttempts.record(0, { activity });
    for (const type of [...Object.keys(FAILURE_TYPES), ...OTHER_FAILURES]) metrics.activityFailures.record(0, { activity, type });
  }
  if (activities.includes('judgeShard')) for (const source of IMAGE_SOURCES) metrics.judgeImageReads.record(0, { source });
}
