/**
 * The round's activities as workflows call them: each request and result, and which task queue
 * each runs on. Results are artifact keys and small summaries, never image bytes (a payload is
 * limited to 2 MB).
 */
import type { RoundInput } from '../config/round.js';

export interface RoundRequest {
  /** The round's artifact folder (`roundRoot`). */
  readonly root: string;
  readonly input: RoundInput;
}

export interface ShardRequest extends RoundRequest {
  readonly shard: number;
}

export interface ReportRequest extends RoundRequest {
  readonly workflowId: string;
}

export interface SampleShardResult {
  readonly shard: number;
  readonly manifest: string;
  readonly prompts: number;
  readonly images: number;
  /** The classes of the shard's prompts. */
  readonly classes: readonly string[];
}

export interface JudgeShardResult {
  readonly shard: number;
  readonly manifest: string;
  readonly images: number;
  /** Images whose class the detector found at the threshold. */
  readonly detected: number;
}

export interface ClassCounts {
  /** Images kept. */
  readonly kept: number;
  /** Prompts that kept no image. */
  readonly dropped: number;
  /** Why prompts were dropped, with how many each reason dropped. */
  readonly reasons: Readonly<Record<string, number>>;
}

export interface CurateResult {
  readonly manifest: string;
  /** Prefix of the imagefolder dataset (images + metadata.jsonl). */
  readonly dataset: string;
  /** Images in the dataset. */
  readonly kept: number;
  /** Prompts that kept no image. */
  readonly dropped: number;
  readonly perClass: Readonly<Record<string, ClassCounts>>;
}

export interface TrainResult {
  readonly manifest: string;
  /** Prefix holding pytorch_lora_weights.safetensors, unet/model.onnx and metrics.json: the next round's `generator.tunedUnet`. */
  readonly lora: string;
  readonly steps: number;
  readonly finalLoss: number | null;
}

export interface ClassAccuracyFigures {
  readonly pairs: number;
  readonly base: number;
  readonly tuned: number;
}

export interface EvaluateResult {
  readonly manifest: string;
  readonly pairs: number;
  readonly winRate: number;
  readonly winRateInterval: readonly [number, number];
  readonly meanClipBase: number;
  readonly meanClipTuned: number;
  readonly signTestP: number;
  readonly accuracyBase: number;
  readonly accuracyTuned: number;
  readonly perClass: Readonly<Record<string, ClassAccuracyFigures>>;
}

export interface ReportResult {
  readonly report: string;
  /** Where a person opens it (a file path or a URL). */
  readonly location: string;
}

/** The activities a round calls; `createActivities` builds them from injected dependencies. */
export interface RoundActivities {
  sampleShard(request: ShardRequest): Promise<SampleShardResult>;
  judgeShard(request: ShardRequest): Promise<JudgeShardResult>;
  curateDataset(request: RoundRequest): Promise<CurateResult>;
  trainLora(request: RoundRequest): Promise<TrainResult>;
  evaluateRound(request: RoundRequest): Promise<EvaluateResult>;
  writeReport(request: ReportRequest): Promise<ReportResult>;
}

/** Task queues (deployment defaults). Free of Node imports: workflows read them. */
export const TASK_QUEUES = {
  /** Workflows and the light activities (curate, report). */
  workflows: 'self-reward',
  /** Model work: sample, judge, train, evaluate; one activity at a time per device. */
  gpu: 'self-reward-gpu',
} as const;

export type WorkerRole = 'gpu' | 'cpu';

/** Which worker role runs each activity: model work on the GPU queue, the rest with the workflows. */
export const ACTIVITY_ROLES = {
  sampleShard: 'gpu',
  judgeShard: 'gpu',
  trainLora: 'gpu',
  evaluateRound: 'gpu',
  curateDataset: 'cpu',
  writeReport: 'cpu',
} as const satisfies Record<keyof RoundActivities, WorkerRole>;

/** The activities of one worker role. */
export function activitiesOf(role: WorkerRole, all: RoundActivities): Partial<RoundActivities> {
  return Object.fromEntries(Object.entries(all).filter(([name]) => ACTIVITY_ROLES[name as keyof RoundActivities] === role));
}
