/** What a running round tells those watching it: the `progress` query's answer and what activities report to it. */
import type { ClassCounts } from './activities.js';

export type Stage = 'prepare' | 'sample' | 'judge' | 'curate' | 'train' | 'evaluate' | 'report' | 'done';

export interface RoundProgress {
  readonly round: number;
  readonly stage: Stage;
  readonly shards: { readonly total: number; readonly sampled: number; readonly judged: number };
  readonly images: { readonly sampled: number; readonly judged: number };
  readonly perClass: Readonly<Record<string, ClassCounts>>;
  readonly trainer: { readonly step: number; readonly steps: number; readonly loss: number | null } | null;
  readonly evaluated: number;
  readonly winRate: number | null;
  readonly report: string | null;
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
