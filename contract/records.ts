/**
 * The records activities publish in the store and read back: sample and score manifests, score
 * records, evaluation records. Each is JSON under a key from `keys.ts`; a stage's manifest is
 * written last and lists what it publishes.
 */
import type { PromptLine } from '../config/prompts.js';
import type { HumanChoice } from '../models/evaluation/humanVotes.js';
import type { RefereeVerdict } from '../models/judge/refereeChecks.js';

export type { HumanChoice };

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

/** The judge's figures for one image, as the score record keeps them. */
export interface ImageScore {
  readonly key: string;
  readonly seed: number;
  readonly detection: number;
  /** The detector's deduplicated instances of the prompt's class (at `judge.threshold`, `judge.iouThreshold`). */
  readonly instances: number;
  /** The count of the class the prompt states; null when it states none. Records of earlier versions lack it. */
  readonly statedCount?: number | null;
  /** Whether `instances` equals the stated count; null when the prompt states none. */
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

/** One held-out image's scores. */
export interface EvaluationScore {
  readonly key: string;
  readonly clip: number;
  readonly detection: number;
  /** The detector's deduplicated instances of the prompt's class; records of earlier versions lack it. */
  readonly instances?: number;
}

/**
 * How different one held-out prompt's images are from each other, per generator: the mean
 * pairwise cosine distance (1 − cos) of their CLIP image embeddings across the seeds.
 */
export interface PromptDiversity {
  readonly base: number;
  readonly parent: number | null;
  readonly tuned: number;
}

/** The referee's verdict on one held-out image, with the curation judge's on the same image beside it. */
export interface RefereeScore extends RefereeVerdict {
  /** The curation judge's detector found the class at `judge.threshold` (its `detection >= threshold`). */
  readonly judgeAccepted: boolean;
}

/** The referee's verdicts on one held-out prompt's images, per generator, seed by seed. */
export interface PromptRefereeVerdicts {
  /** The colour and background the prompt names from the referee's vocabularies; null where it names none. */
  readonly colour: string | null;
  readonly background: string | null;
  readonly base: readonly RefereeScore[];
  readonly parent: readonly RefereeScore[] | null;
  readonly tuned: readonly RefereeScore[];
}

/** Scores of one held-out prompt's images, base and tuned, seed by seed. */
export interface EvaluationRecord {
  readonly promptIndex: number;
  readonly className: string;
  readonly text: string;
  readonly seeds: readonly number[];
  /**
   * The count of the class the prompt states (as the judge reads it), or null when it states
   * none. Records written by earlier versions lack it: their rounds' counting figures are null.
   */
  readonly statedCount?: number | null;
  readonly base: readonly EvaluationScore[];
  /** The parent's images (the tuned UNet the round sampled from), when that is not the base. */
  readonly parent: readonly EvaluationScore[] | null;
  readonly tuned: readonly EvaluationScore[];
  /**
   * The prompt's diversity per generator; null with one seed per prompt (no pair of images to
   * compare). Records written by earlier versions lack it: their rounds' diversity figures are null.
   */
  readonly diversity?: PromptDiversity | null;
  /**
   * The referee's verdicts (`evaluation.referee`); null without a referee. Records written by
   * earlier versions lack it: their rounds' referee figures are null.
   */
  readonly referee?: PromptRefereeVerdicts | null;
}

/** One person's vote on one blind pair of held-out images (base and tuned, same prompt and seed). */
export interface HumanVote {
  /** The pair's number on the review page. */
  readonly pair: number;
  readonly promptIndex: number;
  readonly seed: number;
  /** Which generator's image the page showed on the left, to study position bias later. */
  readonly left: 'base' | 'tuned';
  readonly choice: HumanChoice;
  /** ISO 8601 time the vote was recorded. */
  readonly at: string;
}
