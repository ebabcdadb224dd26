/**
 * The input of a self-reward round: one schema for the workflow, the command line, the Web UI's
 * "Start Workflow" JSON and the README's table. Pure and free of Node imports, because workflow
 * code (deterministic sandbox) validates with it too.
 *
 * `validateRoundInput` fills defaults and returns every problem at once, each naming the field
 * (a JSON path such as `sampling.steps`) and what it must be, so a user fixes a file in one go.
 */
import { JUDGE_SETTINGS, REFEREE_SETTINGS, type RefereeSettings, type Weights } from '../models/judge/config.js';
import { SCHEDULER_CLASS_NAMES, type SchedulerClassName } from '../models/schedulers/names.js';
import { GATE_SCHEMA, gateRefusal, type GateSettings } from './gate.js';
import { promptSource, type PromptSource } from './prompts.js';
import { boolean, integer, list, nullable, number, object, oneOf, refine, string, text, validateInput, type Schema, type Validation } from './schema.js';

export interface GeneratorRef {
  /** Stable Diffusion folder on the GPU workers: diffusers weights (for training) and the ONNX parts (for sampling). */
  readonly base: string;
  /** Artifact prefix holding `unet/model.onnx` of an earlier round: sampling uses it in place of the base UNet. */
  readonly tunedUnet: string | null;
}

export interface JudgeSettings {
  readonly detector: string;
  readonly captioner: string | null;
  /** Required: the evaluation's CLIP scores come from it. */
  readonly clip: string;
  /** Detection confidence at which an image shows the class (the paper: 0.5). */
  readonly threshold: number;
  readonly iouThreshold: number;
  readonly batchSize: number;
  readonly synonyms: Readonly<Record<string, readonly string[]>>;
  /** null: the judge's default weights. */
  readonly weights: Weights | null;
}

export type { RefereeSettings };

export type SelectionRule = 'paper' | 'combined';
export type LrScheduler = 'constant' | 'cosine';
export type MixedPrecision = 'no' | 'fp16' | 'bf16';
export type ExportPrecision = 'fp32' | 'fp16';
export type LoraOptimizer = 'adamw' | 'adamw8bit';

export interface SelectionSettings {
  /** `paper`: top checklist tier, then highest detection; `combined`: highest combined score. */
  readonly rule: SelectionRule;
  /** With `combined`: an image below this combined score is never kept. */
  readonly minCombined: number;
  /** Images kept per prompt, best first; all must pass the rule. The paper keeps 1. */
  readonly perPrompt: number;
  /**
   * Keep only images whose detector instance count equals the count the prompt states (a prompt
   * that states none is unaffected).
   */
  readonly requireCount: boolean;
}

export interface SamplingSettings {
  readonly steps: number;
  readonly guidanceScale: number;
  /** 0 means the generator's own size (its UNet sample size times the VAE factor). */
  readonly width: number;
  readonly height: number;
  readonly negativePrompt: string;
  /** A scheduler class name (`DDIMScheduler`, ...) or null for the generator's own. */
  readonly scheduler: SchedulerClassName | null;
  /** Image k of training prompt i has seed `seed + i * samplesPerPrompt + k`. */
  readonly seed: number;
  /**
   * Images denoised together (one UNet batch); null: all of a prompt's images at once. Each
   * image's noise comes from its own seed, so the images are the same whatever the batch size.
   */
  readonly batchSize: number | null;
}

export interface LoraSettings {
  readonly rank: number;
  readonly learningRate: number;
  /** `constant`, or `cosine`: a half cosine from `learningRate` down to zero at the last step. */
  readonly lrScheduler: LrScheduler;
  readonly batchSize: number;
  /** Optimizer steps; null trains for `epochs`. */
  readonly maxSteps: number | null;
  readonly epochs: number;
  readonly seed: number;
  /** A checkpoint every this many steps, so a retried training resumes near where it stopped. */
  readonly checkpointEvery: number;
  /** Seconds of the training phase without a step after which the trainer counts as hung, is stopped and the training retried. */
  readonly stallSeconds: number;
  /** Training size in pixels; null for the generator's own. */
  readonly resolution: number | null;
  /** Min-SNR loss weighting's gamma; 0 weighs every timestep alike. */
  readonly snrGamma: number;
  /** Probability of training on the empty caption, which keeps guidance's unconditional branch in step. */
  readonly captionDropout: number;
  /** Frozen weights and the forward pass in this dtype (LoRA weights stay fp32); `fp16` needs a CUDA worker. */
  readonly mixedPrecision: MixedPrecision;
  /** Recompute the UNet's activations in the backward pass: less memory, more compute. */
  readonly gradientCheckpointing: boolean;
  /** torch's AdamW, or bitsandbytes' 8-bit AdamW (the same update, its moments in 8 bits). */
  readonly optimizer: LoraOptimizer;
  /**
   * Weights and compute of the fused `unet/model.onnx` the round writes: `fp16` halves it for
   * CUDA workers, attention scores and softmax staying fp32. Its inputs and outputs are float32 either way.
   */
  readonly exportPrecision: ExportPrecision;
  /**
   * LoRAs trained side by side from the one curated dataset, trainer seeds `seed`, `seed + 1`, ...;
   * with more than one, the one that scores best on a validation split of the training prompts is
   * kept and evaluated. 1: one LoRA, as a round always trained.
   */
  readonly seeds: number;
  /** With `seeds` > 1: the share of the training prompts withheld from training to choose the LoRA on (at least one prompt). */
  readonly validationShare: number;
  /**
   * GPU workers that train each LoRA together, data-parallel: `trainLora` leads and waits up to
   * `workersWaitSeconds` for the others, then trains with those that came. 1: one worker.
   */
  readonly workers: number;
  readonly workersWaitSeconds: number;
  /** With `seeds` > 1: the split's seed, and image s of validation prompt i has seed `validationSeed + 100 * i + s`. */
  readonly validationSeed: number;
}

export interface EvaluationSettings {
  readonly prompts: PromptSource;
  readonly seedsPerPrompt: number;
  /** Seed s of held-out prompt i is `seed + 100 * i + s`: base and tuned share it, so their initial noise is identical. */
  readonly seed: number;
  /**
   * Guidance for the base-vs-tuned comparison; null: `sampling.guidanceScale`. Set it to the
   * guidance the model is used at when the training pool is sampled at a lower one.
   */
  readonly guidanceScale: number | null;
  /**
   * Scheduler for the comparison; null: `sampling.scheduler`. Set it to the one the model is
   * used with when the training pool is sampled with another (an ancestral one, say).
   */
  readonly scheduler: SchedulerClassName | null;
  readonly bootstrapResamples: number;
  /** Held-out prompts that are also training prompts are refused unless this is set. */
  readonly allowOverlap: boolean;
  /**
   * A judge that only grades the evaluation (GenEval-style checks), never curates; null: the
   * evaluation is graded by the curation judge alone.
   */
  readonly referee: RefereeSettings | null;
}

export interface ActivitySettings {
  /** An attempt that has not heartbeated for this long is retried: how soon a dead worker's work moves on. */
  readonly heartbeatTimeoutSeconds: number;
  /** Attempts per activity before the round fails (bad data fails at once). */
  readonly maximumAttempts: number;
  /**
   * How long a shard's judge waits on the queue of the worker that sampled it (whose cache holds
   * the images) before it goes to the shared GPU queue: that worker is gone, or still busy.
   */
  readonly judgeScheduleToStartSeconds: number;
}

export interface RoundInput {
  /** 1 for a round on the base generator; a campaign numbers its rounds. */
  readonly round: number;
  readonly generator: GeneratorRef;
  readonly judge: JudgeSettings;
  readonly selection: SelectionSettings;
  /** The training prompts; null only when `dataset` names the data to train on. */
  readonly prompts: PromptSource | null;
  /** A curated dataset of an earlier round: train and evaluate on it, without sampling, judging or curating. */
  readonly dataset: string | null;
  /** Curated datasets of earlier rounds whose images join this round's training set. */
  readonly includeDatasets: readonly string[];
  /** The promotion gate the report checks the tuned generator against its parent with. */
  readonly gate: GateSettings | null;
  readonly samplesPerPrompt: number;
  /** Training prompts are split into this many shards (prompt i goes to shard i mod shards), sampled and judged in parallel. */
  readonly shards: number;
  readonly sampling: SamplingSettings;
  readonly lora: LoraSettings;
  readonly evaluation: EvaluationSettings;
  readonly activities: ActivitySettings;
}

export const SEED_MAX = 2 ** 32 - 1;

/** The most LoRAs a round trains side by side (`lora.seeds`): each holds a GPU worker for the whole training. */
export const LORA_SEEDS_MAX = 16;

/** The most GPU workers that train one LoRA together (`lora.workers`). */
export const LORA_WORKERS_MAX = 64;

const seed = (defaultSeed: number, meaning: string) => integer({ min: 0, max: SEED_MAX, default: defaultSeed, type: 'integer 0–2³²−1', meaning });

const scheduler = (meaning: string) => nullable(oneOf(SCHEDULER_CLASS_NAMES, { meaning }), { type: 'scheduler class name or null', meaning });

/** A prefix of the store, as activities' results name them (`runs/.../dataset/`). */
const artifactPrefix = (meaning: string) => string({ meaning, type: 'artifact prefix' });

/** `evaluation.referee`'s fields; the README documents them in their own table. */
export const REFEREE_SCHEMA: Schema<RefereeSettings> = object<RefereeSettings>(REFEREE_SETTINGS, { meaning: 'the referee', required: true });

const ROUND_FIELDS: Schema<RoundInput> = refine(
  object<RoundInput>(
    {
      round: integer({ min: 1, default: 1, meaning: "the round's number (a campaign numbers its rounds)" }),
      generator: object<GeneratorRef>(
        {
          base: string({ type: 'path', meaning: 'Stable Diffusion folder: diffusers weights (training) and ONNX parts (sampling)' }),
          tunedUnet: nullable(string({ meaning: 'an earlier round’s LoRA prefix' }), {
            type: 'artifact prefix or null',
            meaning: "an earlier round's LoRA prefix: sampling uses its `unet/model.onnx`",
          }),
        },
        { meaning: 'the generator', required: true },
      ),
      judge: object<JudgeSettings>(
        {
          detector: JUDGE_SETTINGS.detector,
          captioner: JUDGE_SETTINGS.captioner,
          clip: string({ type: 'path', meaning: "CLIP model: image–prompt scores and the evaluation's CLIP figures" }),
          threshold: JUDGE_SETTINGS.threshold,
          iouThreshold: JUDGE_SETTINGS.iouThreshold,
          batchSize: JUDGE_SETTINGS.batchSize,
          synonyms: JUDGE_SETTINGS.synonyms,
          weights: JUDGE_SETTINGS.weights,
        },
        { meaning: 'the judge', required: true },
      ),
      selection: object<SelectionSettings>(
        {
          rule: oneOf(['paper', 'combined'], {
            default: 'paper',
            meaning: '`paper`: top checklist tier, then highest detection; `combined`: highest combined score',
          }),
          minCombined: number({ min: 0, max: 1, default: 0, meaning: 'with `combined`: images below this score are never kept' }),
          perPrompt: integer({ min: 1, max: 1000, default: 1, meaning: 'images kept per prompt, best first by the rule, each passing it; the paper keeps 1' }),
          requireCount: boolean({
            default: false,
            meaning:
              'keep only images whose detector instance count (at `judge.threshold`, `judge.iouThreshold`) equals the count the prompt states; a prompt that states none is unaffected',
          }),
        },
        { meaning: 'which judged images a prompt keeps' },
      ),
      prompts: nullable(promptSource('the training prompts'), { type: 'prompt source', meaning: 'the training prompts; required unless `dataset` is set' }),
      dataset: nullable(artifactPrefix('a curated dataset'), {
        type: 'artifact prefix or null',
        meaning:
          "an earlier round's curated dataset (its result's `dataset.dataset`, `runs/.../dataset/`): train and evaluate on it with this input's settings, without sampling, judging or curating",
      }),
      includeDatasets: list(artifactPrefix('a curated dataset'), {
        default: [],
        type: 'list of artifact prefixes',
        meaning: "earlier rounds' curated datasets whose images join this round's training set (a model line's nights accumulate data this way)",
      }),
      gate: nullable(GATE_SCHEMA, {
        type: 'gate or null',
        meaning:
          'a promotion gate (`{"minWinRateLow": 0.5, "maxAccuracyDrop": 0}`) checked against the parent (`generator.tunedUnet`, else the base) after evaluation; the report and memo give its verdict',
      }),
      samplesPerPrompt: integer({ min: 1, max: 1000, default: 8, meaning: 'images sampled per training prompt' }),
      shards: integer({
        min: 1,
        max: 1000,
        default: 2,
        meaning:
          "training prompts are split into this many shards (prompt i in shard i mod shards), sampled and judged in parallel; the evaluation's held-out prompts likewise (at most one shard per prompt). Give a round at least as many as its GPU workers",
      }),
      sampling: object<SamplingSettings>(
        {
          steps: integer({ min: 1, max: 1000, default: 20, meaning: 'denoising steps' }),
          guidanceScale: number({ min: 0, max: 100, default: 7.5, meaning: 'classifier-free guidance scale' }),
          width: integer({ min: 0, max: 8192, default: 0, meaning: "image width; 0: the generator's own size" }),
          height: integer({ min: 0, max: 8192, default: 0, meaning: "image height; 0: the generator's own size" }),
          negativePrompt: text({ default: '', meaning: 'negative prompt' }),
          scheduler: scheduler(`${SCHEDULER_CLASS_NAMES.map((n) => `\`${n}\``).join(', ')}; null: the generator's own`),
          seed: seed(0, 'image k of training prompt i has seed `seed + i * samplesPerPrompt + k`'),
          batchSize: nullable(integer({ min: 1, max: 1000, meaning: 'images per UNet batch' }), {
            type: 'integer 1–1000 or null',
            meaning:
              "images denoised together in one UNet batch (GPU memory grows with it); null: all of a prompt's images at once. The images are the same whatever it is (each one's noise comes from its own seed); the evaluation's sampling uses it too",
          }),
        },
        { meaning: 'how the training pool is sampled' },
      ),
      lora: object<LoraSettings>(
        {
          rank: integer({ min: 1, max: 1024, default: 4, meaning: 'LoRA rank' }),
          learningRate: number({ min: 0, max: 1, exclusiveMin: true, default: 1e-4, meaning: 'AdamW learning rate (its peak, with `cosine`)' }),
          lrScheduler: oneOf(['constant', 'cosine'], {
            default: 'constant',
            meaning: "learning rate after any warmup: constant (diffusers' default), or a half cosine down to zero at the last step",
          }),
          batchSize: integer({ min: 1, max: 4096, default: 16, meaning: 'training batch size' }),
          maxSteps: nullable(integer({ min: 1, meaning: 'optimizer steps' }), { meaning: 'optimizer steps; null: train for `epochs`' }),
          epochs: integer({ min: 1, max: 100_000, default: 100, meaning: 'epochs when `maxSteps` is null' }),
          seed: seed(0, 'training seed'),
          checkpointEvery: integer({
            min: 0,
            default: 50,
            meaning: 'a checkpoint every this many steps, so a retried training resumes near where it stopped (0: none)',
          }),
          stallSeconds: number({
            min: 5,
            max: 86_400,
            default: 900,
            expected: 'a number of seconds in [5, 86400]',
            meaning:
              "seconds of training without a step after which a trainer counts as hung (a GPU that stopped answering, or a team member or leader gone from the network, leaves it waiting for hours): it is stopped, and the training retried from its last checkpoint (a team member waits for its leader's retry instead). Keep it well above a step and a checkpoint",
          }),
          resolution: nullable(integer({ min: 8, meaning: 'training size in pixels' }), { meaning: "training size in pixels; null: the generator's own" }),
          snrGamma: number({
            min: 0,
            max: 1000,
            default: 0,
            expected: 'a number in [0, 1000] (0: off)',
            meaning: "Min-SNR loss weighting with this gamma (5 is usual); 0: every timestep weighs alike, as diffusers' recipe by default",
          }),
          captionDropout: number({
            min: 0,
            max: 0.99,
            default: 0,
            expected: 'a probability in [0, 0.99]',
            meaning: "probability that a training example uses the empty caption, so guidance's unconditional branch moves with the conditional one",
          }),
          mixedPrecision: oneOf(['no', 'fp16', 'bf16'], {
            default: 'no',
            meaning:
              'frozen weights and the forward pass in this dtype, LoRA weights staying fp32: `no` (fp32), `bf16` (GPUs from Ampere on, and CPUs), `fp16` (CUDA workers only, with a loss scaler)',
          }),
          gradientCheckpointing: boolean({
            default: false,
            meaning: "recompute the UNet's activations in the backward pass: much less GPU memory for about a third more training time",
          }),
          optimizer: oneOf(['adamw', 'adamw8bit'], {
            default: 'adamw',
            meaning:
              "`adamw` (torch's), or `adamw8bit`: bitsandbytes' 8-bit AdamW, the same update with its two moments kept in 8 bits, a quarter of their memory, for the LoRA matrices of 4096 elements or more (smaller ones keep 32-bit moments: on SD 2.1 that is most of a rank-4 LoRA, so it pays at large ranks); the GPU workers' Python needs bitsandbytes, or the training fails at once naming `--optimizer`",
          }),
          exportPrecision: oneOf(['fp32', 'fp16'], {
            default: 'fp32',
            meaning:
              'weights and compute of the tuned UNet the round exports (`unet/model.onnx`, LoRA fused): `fp16` halves its size and suits CUDA workers, attention scores and softmax staying fp32 (SD 2.x overflows there in fp16, drawing black images); inputs and outputs are float32 either way. On a CPU worker fp16 runs slower than fp32 and a full-size UNet takes very long to export',
          }),
          seeds: integer({
            min: 1,
            max: LORA_SEEDS_MAX,
            default: 1,
            meaning:
              "LoRAs trained side by side (one per GPU worker) from the one curated dataset, with trainer seeds `seed`, `seed + 1`, ...; above 1, a validation split of the training prompts is withheld from their training, each LoRA and the base sample it (`evaluation.seedsPerPrompt` images per prompt) and the one with the best validation class accuracy (then win rate against the base, then lowest seed) is the round's tuned generator; the result's `training.seeds` has each one's figures and their spread",
          }),
          validationShare: number({
            min: 0,
            max: 0.9,
            exclusiveMin: true,
            default: 0.2,
            expected: 'a number in (0, 0.9]',
            meaning:
              'with `seeds` > 1: the share of the training prompts withheld from training for the validation (rounded, at least one prompt); never the held-out prompts',
          }),
          workers: integer({
            min: 1,
            max: LORA_WORKERS_MAX,
            default: 1,
            meaning:
              'GPU workers that train each LoRA together, data-parallel: the `trainLora` activity leads and waits up to `workersWaitSeconds` for the others, then trains with those that came (the others, when they start, are not needed and go), each running its share of every batch; the LoRA is the one a single worker trains, up to the order of floating-point sums, in about 1/n of the time. Each holds its GPU until the training ends, so set it to the GPU workers free while a round trains; with `seeds` > 1 each LoRA gets this many. 1: one worker',
          }),
          workersWaitSeconds: number({
            min: 1,
            max: 3600,
            default: 60,
            expected: 'a number of seconds in [1, 3600]',
            meaning:
              'with `workers` > 1: how long the leading trainer waits for the others before it trains with those that came, and how long a waiting one waits for a leader to meet',
          }),
          validationSeed: seed(
            700_000,
            "with `seeds` > 1: the validation split's seed; image s of validation prompt i has seed `validationSeed + 100 * i + s` (keep it apart from `evaluation.seed`)",
          ),
        },
        { meaning: "the LoRA trainer's recipe" },
      ),
      evaluation: object<EvaluationSettings>(
        {
          prompts: promptSource('held-out prompts, sampled by base and tuned with the same noise'),
          seedsPerPrompt: integer({ min: 1, max: 100, default: 4, meaning: 'images per held-out prompt and side' }),
          seed: seed(500_000, 'seed s of held-out prompt i is `seed + 100 * i + s`'),
          guidanceScale: nullable(number({ min: 0, max: 100, meaning: 'guidance' }), {
            type: 'number 0–100 or null',
            meaning:
              'guidance of the base-vs-tuned comparison; null: `sampling.guidanceScale`. Set it to the guidance the model is used at when the training pool is sampled at a lower one',
          }),
          scheduler: scheduler(
            'scheduler of the base-vs-tuned comparison; null: `sampling.scheduler`. Set it to the one the model is used with when the training pool is sampled with another (an ancestral one)',
          ),
          bootstrapResamples: integer({
            min: 100,
            max: 1_000_000,
            default: 2000,
            meaning: 'bootstrap resamples of the confidence intervals of the win rate, the accuracy gain and the counting accuracy gain',
          }),
          allowOverlap: boolean({
            default: false,
            meaning: 'allow held-out prompts that are also training prompts (refused by default: a comparison on prompts the LoRA trained on overstates it)',
          }),
          referee: nullable(REFEREE_SCHEMA, {
            type: 'referee or null',
            meaning:
              'a second judge that grades the held-out images GenEval-style (object present, count, colour, background) and is never used to curate, so reward hacking of the curation judge shows; its fields are in the referee table. Null: the curation judge alone grades',
          }),
        },
        { meaning: 'the base-vs-tuned comparison on held-out prompts', required: true },
      ),
      activities: object<ActivitySettings>(
        {
          // Activities heartbeat every few seconds; less than 15 s would retry on a busy machine.
          heartbeatTimeoutSeconds: integer({
            min: 15,
            max: 3600,
            default: 60,
            meaning:
              "an attempt silent this long is retried: how soon a dead worker's work moves on. A worker heartbeats every few seconds while its models and its trainer work (they run in threads and processes of their own)",
          }),
          maximumAttempts: integer({ min: 1, max: 100, default: 5, meaning: 'attempts per activity before the round fails (bad data fails at once)' }),
          judgeScheduleToStartSeconds: integer({
            min: 1,
            max: 3600,
            default: 30,
            meaning:
              "how long a shard's judge waits for the GPU worker that sampled the shard (its images are in that worker's cache) to take it; then, the worker being gone or busy, any GPU worker judges it from the store",
          }),
        },
        { meaning: 'retries and timeouts of the stages' },
      ),
    },
    { meaning: 'a self-reward round', required: true },
  ),
  (round) =>
    round.prompts === null && round.dataset === null ? { field: 'prompts', expected: 'a prompt source (it may be left out only when `dataset` is set)' } : null,
  { evenWithErrors: true },
);

const GATED_FIELDS: Schema<RoundInput> = refine(ROUND_FIELDS, (round) => gateRefusal(round.gate, round.evaluation));

// The validation split is drawn from this round's training prompts: a round that only retrains a dataset has none.
export const ROUND_SCHEMA: Schema<RoundInput> = refine(GATED_FIELDS, (round) =>
  round.lora.seeds > 1 && round.prompts === null
    ? { field: 'lora.seeds', expected: '1 when `prompts` is null (the validation split is drawn from the training prompts)' }
    : null,
);

export function validateRoundInput(input: unknown): Validation<RoundInput> {
  return validateInput(ROUND_SCHEMA, input);
}
