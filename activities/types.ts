/**
 * What activities return to workflows: artifact keys and small summaries, never image bytes
 * (a payload is limited to 2 MB). Types only, so workflow code can import them.
 */
import type { PromptLine } from '../config/round.js';

/** One sampled image as the sample manifest lists it. */
export interface SampledImage {
  readonly key: string;
  readonly promptIndex: number;
  /** Image k of its prompt, 0-based. */
  readonly k: number;
  readonly seed: number;
}

export interface SamplePrompt extends PromptLine {
  readonly promptIndex: number;
}

export interface SampleManifest {
  readonly shard: number;
  readonly prompts: readonly SamplePrompt[];
  readonly images: readonly SampledImage[];
}

export interface SampleShardResult {
  readonly shard: number;
  readonly manifest: string;
  readonly prompts: number;
  readonly images: number;
  /** The classes of the shard's prompts. */
  readonly classes: readonly string[];
}

/** The judge's figures for one image, as the score record keeps them. */
export interface ImageScore {
  readonly key: string;
  readonly seed: number;
  readonly detection: number;
  readonly instances: number;
  readonly countMatches: boolean | null;
  readonly caption: string | null;
  readonly checklist: number;
  readonly clip: number;
  readonly combined: number;
}

/** Every image of one training prompt with its scores. */
export interface PromptScores extends SamplePrompt {
  readonly images: readonly ImageScore[];
}

export interface JudgeManifest {
  readonly shard: number;
  readonly records: readonly string[];
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

/** What an activity tells its workflow while it runs (merged into the `progress` query). */
export interface StageProgress {
  readonly stage: string;
  readonly shard?: number;
  readonly sampled?: number;
  readonly judged?: number;
  readonly trainerStep?: number;
  readonly trainerSteps?: number;
  readonly loss?: number;
  readonly evaluated?: number;
}

/** Error types a retry cannot fix; workflows list them as non-retryable. */
export const NON_RETRYABLE_ERRORS = ['InvalidInput', 'BadPrompts', 'BadModel', 'BadTrainingInput', 'MissingArtifact'] as const;

/** The signal activities send their workflow with a `StageProgress`. */
export const PROGRESS_SIGNAL = 'stageProgress';
