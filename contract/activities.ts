/**
 * The round's activities as workflows call them: each request and result, and which task queue
 * each runs on. Results are artifact keys and small summaries, never image bytes (a payload is
 * limited to 2 MB).
 */
import type { GateVerdict } from '../config/gate.js';
import type { RoundInput } from '../config/round.js';

export interface PrepareRequest {
  /** The round's artifact folder (`roundRoot`). */
  readonly root: string;
  readonly input: RoundInput;
}

/** What the check before sampling found, and where the round's input is kept for its stages. */
export interface PreparedRound {
  /** The store key of the round's input; every later stage reads it from there. */
  readonly input: string;
  /** SHA-256 of the input as JSON. */
  readonly digest: string;
  /** Every class of the training and held-out prompts, sorted. */
  readonly classes: readonly string[];
  readonly prompts: number;
  readonly heldOutPrompts: number;
}

/**
 * A stage's request: references, not the input itself, so a round's history grows with its
 * stages and shards, not with its input.
 */
export interface RoundRequest {
  /** The round's artifact folder (`roundRoot`). */
  readonly root: string;
  /** The round's input in the store (`PreparedRound.input`). */
  readonly inputKey: string;
}

export interface ShardRequest extends RoundRequest {
  readonly shard: number;
}

export interface JudgeRequest extends ShardRequest {
  /** The shard's sample manifest. */
  readonly samples: string;
}

export interface CurateRequest extends RoundRequest {
  /** The judge manifest of every shard (none when the round trains on earlier datasets only). */
  readonly judged: readonly string[];
  /** Curated datasets of earlier rounds whose images join this one's, in this order. */
  readonly include: readonly string[];
}

export interface TrainRequest extends RoundRequest {
  /** The curated dataset's prefix. */
  readonly dataset: string;
  /**
   * The trainer seed of one of several LoRAs trained side by side (`lora.seeds` > 1): it replaces
   * `lora.seed`, and the LoRA and its checkpoints live under their own keys (`trainingRoot`).
   * Absent for a round's one LoRA, which keeps the keys it always had.
   */
  readonly seed?: number;
}

export interface EvaluateRequest extends RoundRequest {
  /** The LoRA prefix of the tuned generator under evaluation. */
  readonly lora: string;
  /** The tuned UNet the round sampled from (its parent), compared against as well as the base; null when that is the base. */
  readonly parent: string | null;
  /** With several LoRAs (`lora.seeds`), their validation figures and spread: `evaluation.json` keeps them beside the kept one's figures. */
  readonly seeds?: LoraSeedsFigures;
}

export interface EvaluateShardRequest extends RoundRequest {
  /** The LoRA prefix of the tuned generator under evaluation. */
  readonly lora: string;
  /** The tuned UNet the round sampled from (its parent), a reference besides the base; null when that is the base. */
  readonly parent: string | null;
  /** This shard, 0-based, of `shards`: it takes the held-out prompts whose index is `shard` modulo `shards`. */
  readonly shard: number;
  readonly shards: number;
}

export interface EvaluateShardResult {
  readonly shard: number;
  /** Held-out prompts of the shard, each now with its record. */
  readonly prompts: number;
  /** Held-out images the shard's prompts hold on every side, sampled now or before. */
  readonly images: number;
}

export interface ReferencesRequest extends RoundRequest {
  /** The tuned UNet the round sampled from, a reference besides the base; null when that is the base. */
  readonly parent: string | null;
  /** One part of the held-out prompts, split as the evaluation's shards split them; absent: all of them. */
  readonly part?: { readonly shard: number; readonly shards: number };
}

export interface ReferencesResult {
  /** Held-out images the references hold, sampled now or before. */
  readonly images: number;
}

/** Which run a reset run replaced, for the report. */
export interface RunIdentity {
  readonly workflowId: string;
  readonly runId: string;
  /** The run this one was reset from (its original run id), or null for a run that was not reset. */
  readonly resetFrom: string | null;
}

export interface ReportRequest extends RoundRequest {
  readonly run: RunIdentity;
  readonly judged: readonly string[];
  readonly dataset: CurateResult;
  readonly training: TrainResult;
  readonly evaluation: EvaluateResult;
  /** The promotion gate's verdict, when the round has a gate. */
  readonly gate: GateVerdict | null;
}

export interface SampleShardResult {
  readonly shard: number;
  readonly manifest: string;
  readonly prompts: number;
  readonly images: number;
  /** The classes of the shard's prompts. */
  readonly classes: readonly string[];
  /**
   * The task queue only the worker that sampled the shard polls: its cache holds the images, so
   * the shard's judge is scheduled there first. Absent from workers without one and from the
   * results of earlier versions.
   */
  readonly workerQueue?: string;
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
  /** Images in the dataset, those included from earlier datasets too. */
  readonly kept: number;
  /** Of those, images from earlier rounds' datasets (`include`). */
  readonly included: number;
  /** Prompts that kept no image. */
  readonly dropped: number;
  readonly perClass: Readonly<Record<string, ClassCounts>>;
  /**
   * With `lora.seeds` > 1: the training prompts withheld for validation (the round samples none
   * of their images, and an included dataset's images of the same text stay out of the dataset)
   * and the included images that left out. Absent otherwise.
   */
  readonly withheld?: { readonly prompts: number; readonly images: number };
}

export interface TrainResult {
  readonly manifest: string;
  /** Prefix holding pytorch_lora_weights.safetensors, unet/model.onnx and metrics.json: the next round's `generator.tunedUnet`. */
  readonly lora: string;
  readonly steps: number;
  readonly finalLoss: number | null;
  /** The trainer seed of one of several LoRAs (`TrainRequest.seed`); absent for a round's one LoRA. */
  readonly seed?: number;
  /** With `lora.workers` > 1: how many workers trained it together (the leader and the others that came in time). */
  readonly workers?: number;
  /**
   * In a round's result, with `lora.seeds` > 1: every LoRA's validation figures, which one was
   * kept (this result is the kept one's training) and their spread. Absent with one LoRA.
   */
  readonly seeds?: LoraSeedsFigures;
}

/** What one of the workers that train a LoRA together did (`joinTraining`). */
export interface TrainingMemberResult {
  /** Its place among the trainers, 1 and up; null when the leader had begun without it, or none came to meet. */
  readonly rank: number | null;
  /** How many trained together; null when it met no leader. */
  readonly workers: number | null;
}

/** One LoRA of several on the validation split: sampled by it and by the base with the same seeds, scored by the curation judge. */
export interface ValidateRequest extends RoundRequest {
  /** The LoRA's prefix (`TrainResult.lora`). */
  readonly lora: string;
  /** Its trainer seed: its validation images and records are kept under it. */
  readonly seed: number;
}

export interface ValidationResult {
  readonly manifest: string;
  readonly seed: number;
  readonly lora: string;
  /** Validation prompts, and images per side (prompts × `evaluation.seedsPerPrompt`). */
  readonly prompts: number;
  readonly pairs: number;
  /** Share of the validation images the detector finds the prompt's class in (at `judge.threshold`), for the base and for this LoRA. */
  readonly accuracyBase: number;
  readonly accuracyTuned: number;
  /** Paired CLIP win rate of this LoRA against the base on the validation images. */
  readonly winRate: number;
  /** The trainer's final loss as its metrics.json gives it (the last epoch's mean); null when it gives none. */
  readonly finalLoss: number | null;
}

/** One LoRA's line in `LoraSeedsFigures`. */
export interface LoraSeedFigures {
  readonly seed: number;
  readonly lora: string;
  /** Its validation manifest (`validation/seed-<s>.json`), with the full comparison. */
  readonly validation: string;
  readonly accuracyBase: number;
  readonly accuracy: number;
  /** `accuracy - accuracyBase`. */
  readonly accuracyGain: number;
  readonly winRate: number;
  readonly finalLoss: number | null;
  readonly kept: boolean;
}

/** Several LoRAs trained from one dataset with different trainer seeds, measured on the validation split. */
export interface LoraSeedsFigures {
  /** The kept LoRA's trainer seed. */
  readonly kept: number;
  readonly validationPrompts: number;
  readonly validationPairs: number;
  /** By trainer seed. */
  readonly perSeed: readonly LoraSeedFigures[];
  /** Spread of the validation accuracy gains (fractions): how much the trainer seed alone moves the round's result. */
  readonly accuracyGain: { readonly min: number; readonly max: number; readonly mean: number; readonly sd: number };
}

export interface ClassAccuracyFigures {
  readonly pairs: number;
  readonly base: number;
  readonly tuned: number;
}

/** A paired share of hits (1) over held-out images or prompts: the reference's, the tuned generator's, and the gain's bootstrap interval. */
export interface PairedShare {
  /** Images (or prompts) the share is over. */
  readonly n: number;
  readonly base: number;
  readonly tuned: number;
  /** `tuned - base`. */
  readonly gain: number;
  /** 95% interval of the gain, the same paired bootstrap over prompts (same draws) as the other intervals. */
  readonly gainInterval: readonly [number, number];
}

/** One class's reward-hacking check: images the curation judge accepts and the referee finds no class in. */
export interface ClassHacking {
  readonly images: number;
  /** Share of the class's images the judge accepts and the referee rejects, reference and tuned. */
  readonly base: number;
  readonly tuned: number;
  readonly change: number;
  /** 95% bootstrap interval of `change` over the class's prompts. */
  readonly changeInterval: readonly [number, number];
  /** The share rose beyond noise: the interval's low end is above 0. */
  readonly flagged: boolean;
  /** The curation judge's accuracy gain on the class, and the referee's (object present). */
  readonly judgeGain: number;
  readonly refereeGain: number;
}

/**
 * GenEval-style figures from the referee (`evaluation.referee`), a judge that never curated.
 * A check that no held-out prompt asks for (no stated count, colour or background) is null.
 */
export interface RefereeFigures {
  /** The referee found the prompt's class (at `presenceThreshold`). */
  readonly objectPresent: PairedShare;
  /** The referee's instance count (at `countThreshold`) is the prompt's, over images of prompts that state one. */
  readonly counting: PairedShare | null;
  /** CLIP's colour for the object's crop is the prompt's, over images of prompts that name one. */
  readonly colour: PairedShare | null;
  /** CLIP's background for the image is the prompt's, over images of prompts that name one. */
  readonly background: PairedShare | null;
  /** Every check that applies to the image is right. */
  readonly allCorrectImages: PairedShare;
  /** Every image of the prompt (all its seeds) is all-correct: GenEval's per-prompt score. */
  readonly allCorrectPrompts: PairedShare;
  /** The curation judge's accuracy, as `accuracyBase`/`accuracyTuned`, beside the referee's for comparison. */
  readonly judgeAccepted: PairedShare;
  /** Per class (by name), the hacking check. */
  readonly hacking: Readonly<Record<string, ClassHacking>>;
  /** Classes whose accepted-but-absent share rose beyond noise, by name. */
  readonly flaggedClasses: readonly string[];
}

/** One row of the GenEval-style table, as the memo holds it. */
export interface RefereeTableRow {
  readonly metric: string;
  readonly base: number;
  readonly tuned: number;
  readonly gain: number;
  readonly gainInterval: readonly [number, number];
}

/** The GenEval-style table in a fixed order (checks no held-out prompt asks for are left out), and the flagged classes: what a round's memo shows. */
export function refereeTable(r: RefereeFigures): { readonly table: readonly RefereeTableRow[]; readonly flaggedClasses: readonly string[] } {
  const rows: ReadonlyArray<readonly [string, PairedShare | null]> = [
    ['objectPresent', r.objectPresent],
    ['counting', r.counting],
    ['colour', r.colour],
    ['background', r.background],
    ['allCorrectImages', r.allCorrectImages],
    ['allCorrectPrompts', r.allCorrectPrompts],
    ['judgeAccepted', r.judgeAccepted],
  ];
  return {
    table: rows.flatMap(([metric, s]) => (s === null ? [] : [{ metric, base: s.base, tuned: s.tuned, gain: s.gain, gainInterval: s.gainInterval }])),
    flaggedClasses: r.flaggedClasses,
  };
}

/** The tuned generator against a reference on held-out prompts, paired by seed; the `...Base` figures are the reference's. */
export interface Comparison {
  readonly pairs: number;
  readonly winRate: number;
  readonly winRateInterval: readonly [number, number];
  readonly meanClipBase: number;
  readonly meanClipTuned: number;
  readonly signTestP: number;
  readonly accuracyBase: number;
  readonly accuracyTuned: number;
  /**
   * 95% interval of `accuracyTuned - accuracyBase` by a paired bootstrap over held-out prompts
   * (a prompt's seeds stay together); null only in results of earlier versions.
   */
  readonly accuracyGainInterval: readonly [number, number] | null;
  /**
   * Diversity of the reference's and the tuned generator's images: the mean over held-out
   * prompts of the mean pairwise cosine distance (1 − cos) of the CLIP image embeddings of a
   * prompt's images across seeds. Null with one seed per prompt, and for records of earlier versions.
   */
  readonly diversityBase: number | null;
  readonly diversityTuned: number | null;
  /** `diversityTuned / diversityBase - 1`: negative when the tuned generator's images vary less; null when either is null or the base's is 0. */
  readonly diversityChange: number | null;
  /**
   * Counting accuracy: the share of held-out images whose detector instance count (at
   * `judge.threshold`, `judge.iouThreshold`) equals the count their prompt states, over the
   * images of prompts that state one. Null when no held-out prompt states a count, and for
   * records of earlier versions.
   */
  readonly countAccuracyBase: number | null;
  readonly countAccuracyTuned: number | null;
  /** 95% interval of `countAccuracyTuned - countAccuracyBase`, the same paired bootstrap over prompts as `accuracyGainInterval`; null when they are. */
  readonly countGainInterval: readonly [number, number] | null;
  readonly perClass: Readonly<Record<string, ClassAccuracyFigures>>;
  /**
   * The referee's figures; null without a referee, and when a record (of an earlier version)
   * lacks its verdicts.
   */
  readonly referee: RefereeFigures | null;
}

/** Against the base generator, and against the parent the round sampled from when that is a tuned one. */
export interface EvaluateResult extends Comparison {
  readonly manifest: string;
  readonly parent: Comparison | null;
  /** The round's LoRAs when it trained several (`lora.seeds`): each one's validation figures and their spread. */
  readonly seeds?: LoraSeedsFigures;
}

/** The figures a result recorded by an earlier version may lack (a workflow history, a stored `evaluation.json`). */
type LaterFigures =
  | 'accuracyGainInterval'
  | 'diversityBase'
  | 'diversityTuned'
  | 'diversityChange'
  | 'countAccuracyBase'
  | 'countAccuracyTuned'
  | 'countGainInterval'
  | 'referee';
export type RecordedComparison = Omit<Comparison, LaterFigures> & Partial<Pick<Comparison, LaterFigures>>;
export type RecordedEvaluation = RecordedComparison & { readonly manifest: string; readonly parent?: RecordedComparison | null };

function currentComparison(c: RecordedComparison): Comparison {
  return {
    ...c,
    accuracyGainInterval: c.accuracyGainInterval ?? null,
    diversityBase: c.diversityBase ?? null,
    diversityTuned: c.diversityTuned ?? null,
    diversityChange: c.diversityChange ?? null,
    countAccuracyBase: c.countAccuracyBase ?? null,
    countAccuracyTuned: c.countAccuracyTuned ?? null,
    countGainInterval: c.countGainInterval ?? null,
    referee: c.referee ?? null,
  };
}

/** An evaluation result of any version as this one reads it: what an earlier version did not compute is null. */
export function currentEvaluation(e: RecordedEvaluation): EvaluateResult {
  const { parent, ...own } = e;
  return { ...currentComparison(own), manifest: e.manifest, parent: parent === undefined || parent === null ? null : currentComparison(parent) };
}

export interface ReportResult {
  readonly report: string;
  /** Where a person opens it (a file path or a URL). */
  readonly location: string;
}

/** The activities a round calls; `createActivities` builds them from injected dependencies. */
export interface RoundActivities {
  prepareRound(request: PrepareRequest): Promise<PreparedRound>;
  sampleShard(request: ShardRequest): Promise<SampleShardResult>;
  judgeShard(request: JudgeRequest): Promise<JudgeShardResult>;
  curateDataset(request: CurateRequest): Promise<CurateResult>;
  trainLora(request: TrainRequest): Promise<TrainResult>;
  /** With `lora.workers` > 1: one more GPU worker trains the LoRA of `trainLora` (the leader) with it. */
  joinTraining(request: TrainRequest): Promise<TrainingMemberResult>;
  /** The references' held-out images, sampled while the LoRA trains (they do not depend on it). */
  sampleReferences(request: ReferencesRequest): Promise<ReferencesResult>;
  /** A slice of the held-out prompts: the tuned generator's images and each prompt's record. */
  evaluateShard(request: EvaluateShardRequest): Promise<EvaluateShardResult>;
  evaluateRound(request: EvaluateRequest): Promise<EvaluateResult>;
  /** The base's validation images (`lora.seeds` > 1), sampled once while the LoRAs train. */
  sampleValidationBase(request: RoundRequest): Promise<ReferencesResult>;
  /** One LoRA of several on the validation split, against the base. */
  validateLora(request: ValidateRequest): Promise<ValidationResult>;
  writeReport(request: ReportRequest): Promise<ReportResult>;
}
