/**
 * Artifact keys, derived only from the workflow id, the run, the round, the shard and the item,
 * never from the attempt: a retry, a crashed worker's successor or a replay finds what an
 * earlier try of the same run published. A reset run, or a new run of a closed workflow id,
 * writes under its own run id, so it re-executes its stages into fresh keys and leaves the
 * earlier run's artifacts as they were; stages it keeps from before a reset point hand their
 * results' keys on, and later stages read those.
 */
const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** The folder of one round: `runs/<workflow id>/<run id>/round-<r>`. Workflow ids may hold any character. */
export function roundRoot(workflowId: string, runId: string, round: number): string {
  const id = encodeURIComponent(workflowId).replace(/^\./, '%2E');
  return `runs/${id}/${encodeURIComponent(runId)}/round-${pad(round, 3)}`;
}

/** The round number of a round's folder (`.../round-007` is 7); null for any other key. */
export function roundOfRoot(root: string): number | null {
  const match = /\/round-(\d+)$/.exec(root);
  return match === null ? null : Number(match[1]);
}

/** The generators a round's evaluation samples: the base, the parent it sampled from (when tuned), the tuned one. */
export type EvaluationSide = 'base' | 'parent' | 'tuned';

/**
 * Where a LoRA, its manifest and its trainer's checkpoints live: the round's folder for a round's
 * one LoRA (the keys it always had), `seeds/seed-<s>` under it for each of several LoRAs
 * (`lora.seeds` > 1), by trainer seed.
 */
export function trainingRoot(root: string, trainerSeed: number | null): string {
  return trainerSeed === null ? root : `${root}/seeds/seed-${pad(trainerSeed, 10)}`;
}

/** Whose validation images: the base's (sampled once), or the LoRA of a trainer seed. */
export type ValidationSide = 'base' | { readonly seed: number };

const validationFolder = (root: string, seed: number) => `${root}/validation/seed-${pad(seed, 10)}`;

const shardFolder = (root: string, stage: string, shard: number) => `${root}/${stage}/shard-${pad(shard, 3)}`;

export const artifactKeys = {
  /** The round's validated input and its digest, written before any stage runs. */
  input: (root: string) => `${root}/input.json`,
  sampleFolder: (root: string, shard: number) => `${shardFolder(root, 'samples', shard)}/`,
  sampledImage: (root: string, shard: number, promptIndex: number, k: number) =>
    `${shardFolder(root, 'samples', shard)}/${pad(promptIndex, 5)}-${pad(k, 3)}.png`,
  sampleManifest: (root: string, shard: number) => `${shardFolder(root, 'samples', shard)}.json`,
  scoreRecord: (root: string, shard: number, promptIndex: number) => `${shardFolder(root, 'scores', shard)}/${pad(promptIndex, 5)}.json`,
  judgeManifest: (root: string, shard: number) => `${shardFolder(root, 'scores', shard)}.json`,
  dataset: (root: string) => `${root}/dataset/`,
  datasetImage: (root: string, promptIndex: number, k: number) => `${root}/dataset/${pad(promptIndex, 5)}-${pad(k, 3)}.png`,
  /** An image of the i-th included earlier dataset, under its own file name there. */
  includedImage: (root: string, include: number, fileName: string) => `${root}/dataset/included-${pad(include, 2)}-${fileName}`,
  datasetMetadata: (root: string) => `${root}/dataset/metadata.jsonl`,
  curateManifest: (root: string) => `${root}/dataset.json`,
  lora: (root: string) => `${root}/lora/`,
  trainManifest: (root: string) => `${root}/lora.json`,
  /**
   * The trainer's newest checkpoint while the round trains, so that a retry on another worker
   * resumes from it: `step-<N>/` (the trainer's folder, file for file) and `latest.json`, which
   * names the step and its files and is written only once they are all stored.
   */
  trainerCheckpoints: (root: string) => `${root}/trainer-checkpoint/`,
  trainerCheckpoint: (root: string, step: number) => `${root}/trainer-checkpoint/step-${pad(step, 8)}/`,
  trainerCheckpointPointer: (root: string) => `${root}/trainer-checkpoint/latest.json`,
  /**
   * Where the leading trainer of a LoRA that several workers train (`lora.workers` > 1) meets the
   * others: its address and a fresh id per trainer process, so that a retry's meeting is told from a dead one's.
   */
  trainerMeeting: (root: string) => `${root}/trainer-meeting.json`,
  /** The trainer's whole stderr of an attempt that did not train a LoRA (a successful one's is `lora/trainer.log`). */
  trainerLog: (root: string, attempt: number) => `${root}/trainer-logs/attempt-${pad(attempt, 3)}.log`,
  evaluationImage: (root: string, side: EvaluationSide, promptIndex: number, s: number) => `${root}/evaluation/${side}/${pad(promptIndex, 5)}-${pad(s, 3)}.png`,
  evaluationRecord: (root: string, promptIndex: number) => `${root}/evaluation/pairs/${pad(promptIndex, 5)}.json`,
  evaluateManifest: (root: string) => `${root}/evaluation.json`,
  /** Validation images of the base and of each LoRA (`lora.seeds` > 1), of training prompts withheld from training. */
  validationFolder: (root: string) => `${root}/validation/`,
  validationImage: (root: string, side: ValidationSide, promptIndex: number, s: number) =>
    `${side === 'base' ? `${root}/validation/base` : `${validationFolder(root, side.seed)}/tuned`}/${pad(promptIndex, 5)}-${pad(s, 3)}.png`,
  /** A validation prompt's scores, base and the LoRA of a trainer seed, in the evaluation's record format. */
  validationRecord: (root: string, seed: number, promptIndex: number) => `${validationFolder(root, seed)}/pairs/${pad(promptIndex, 5)}.json`,
  validationManifest: (root: string, seed: number) => `${validationFolder(root, seed)}.json`,
  report: (root: string) => `${root}/report.html`,
  /** People's votes on the round's blind base-versus-tuned pairs (`selfreward review`), one object per vote, never overwritten. */
  reviewVotes: (root: string) => `${root}/review/votes/`,
  /** A vote under a name of its own (its time and a random part), so concurrent reviewers never write the same key. */
  reviewVote: (root: string, name: string) => `${root}/review/votes/${name}.json`,
} as const;

/** Prompt i belongs to shard i mod shards: shards stay balanced and a prompt's images stay together. */
export function shardPromptIndices(promptCount: number, shards: number, shard: number): number[] {
  const indices: number[] = [];
  for (let i = shard; i < promptCount; i += shards) indices.push(i);
  return indices;
}

export function trainingSeed(baseSeed: number, samplesPerPrompt: number, promptIndex: number, k: number): number {
  return baseSeed + promptIndex * samplesPerPrompt + k;
}

export function evaluationSeed(baseSeed: number, promptIndex: number, s: number): number {
  return baseSeed + 100 * promptIndex + s;
}

/** Seed s of validation prompt i (a training prompt withheld from training): apart from the training pool's and the held-out seeds by `lora.validationSeed`. */
export function validationSeed(baseSeed: number, promptIndex: number, s: number): number {
  return baseSeed + 100 * promptIndex + s;
}

/** A model line's records (`contract/lines.ts`); line names are restricted so they are plain key segments. */
export const lineKeys = {
  current: (line: string) => `lines/${line}/current.json`,
  champion: (line: string, version: number) => `lines/${line}/champions/${pad(version, 6)}.json`,
  events: (line: string) => `lines/${line}/history/`,
  event: (line: string, seq: number) => `lines/${line}/history/${pad(seq, 6)}.json`,
} as const;
