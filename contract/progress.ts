/**
 * What a running round tells those watching it: the `progress` query answers with what finished
 * stages and shards did; each running activity's heartbeat details say how far it is. A client
 * merges the two (`withLiveProgress`), so live figures cost no event in the round's history.
 */
import type { ClassCounts } from './activities.js';

export type Stage = 'prepare' | 'sample' | 'judge' | 'curate' | 'train' | 'validate' | 'evaluate' | 'report' | 'done';

export interface RoundProgress {
  readonly round: number;
  readonly stage: Stage;
  readonly shards: { readonly total: number; readonly sampled: number; readonly judged: number };
  readonly images: { readonly sampled: number; readonly judged: number };
  readonly perClass: Readonly<Record<string, ClassCounts>>;
  readonly trainer: { readonly step: number; readonly steps: number; readonly loss: number | null } | null;
  /**
   * With `lora.seeds` > 1: the LoRAs the round trains side by side, how many are trained and
   * validated, and the trainer seed of the one kept once all are. Absent for a round of one LoRA.
   */
  readonly loras?: {
    readonly total: number;
    readonly trained: number;
    readonly validated: number;
    readonly kept: number | null;
    /** Validation images the running validations have drawn so far (live figures only, from their heartbeats). */
    readonly validating?: number;
  };
  readonly evaluated: number;
  readonly winRate: number | null;
  readonly report: string | null;
}

/** What a running activity says of itself in its heartbeat details. */
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

/**
 * The round's progress with its running activities' figures added: images of shards still being
 * sampled or judged, the trainer's step, the validation and held-out images drawn so far.
 */
export function withLiveProgress(settled: RoundProgress, running: readonly StageProgress[]): RoundProgress {
  const live = (stage: string, read: (p: StageProgress) => number | undefined) =>
    running.filter((p) => p.stage === stage).reduce((n, p) => n + (read(p) ?? 0), 0);
  const training = running.find((p) => p.stage === 'train' && p.trainerStep !== undefined);
  const validating = running.some((p) => p.stage === 'validate' && p.evaluated !== undefined);
  return {
    ...settled,
    ...(settled.loras === undefined || !validating ? {} : { loras: { ...settled.loras, validating: live('validate', (p) => p.evaluated) } }),
    images: { sampled: settled.images.sampled + live('sample', (p) => p.sampled), judged: settled.images.judged + live('judge', (p) => p.judged) },
    trainer: training === undefined ? settled.trainer : { step: training.trainerStep!, steps: training.trainerSteps ?? 0, loss: training.loss ?? null },
    // Held-out images: those of the evaluation's shards that are done, and those the running ones (or the references, while the LoRA trains) hold so far.
    evaluated: settled.evaluated + live('evaluate', (p) => p.evaluated),
  };
}
