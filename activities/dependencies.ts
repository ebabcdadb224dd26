import type { SelfRewardMetrics } from '../observability/metrics.js';
import type { ArtifactStore } from '../store/store.js';
import type { ModelRuntime } from './runtime.js';
import type { SampleCache } from './sampleCache.js';

/** The Python LoRA trainer as a command line: `[program, ...args]` to which the trainer's flags are appended. */
export interface TrainerCommand {
  readonly command: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** How long a stopped trainer may take to write its checkpoint before it is killed. */
  readonly stopGraceMs: number;
  /** Where the trainers of other workers reach this worker's when they train a LoRA together. */
  readonly address: string;
}

/** Everything activities use, injected by the worker (or a test). */
export interface ActivityDependencies {
  readonly store: ArtifactStore;
  readonly runtime: ModelRuntime;
  readonly trainer: TrainerCommand;
  /** `cpu` or `cuda:N`: models load there and the trainer sees only that device. */
  readonly device: string;
  /** CPU threads for model work: each ONNX session's and the trainer's (SELF_REWARD_THREADS). */
  readonly threads: number;
  /** Local scratch: downloaded datasets and models, trainer output and checkpoints. */
  readonly workDir: string;
  /** The folders a round's input may name (models, prompt files); null: any. */
  readonly allowedPaths: readonly string[] | null;
  /** Where the activities record what they did (`observability/metrics.ts`). */
  readonly metrics: SelfRewardMetrics;
  /** The images this worker sampled, kept for their judge (SELF_REWARD_SAMPLE_CACHE_MB); absent: the judge reads the store. */
  readonly sampleCache?: SampleCache;
  /**
   * The task queue this worker alone polls (the plugin sets it): a shard's sampling result names
   * it, so the shard's judge is scheduled where its images are cached.
   */
  readonly workerQueue?: string;
}
