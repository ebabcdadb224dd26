/**
 * Several LoRAs of one round (`lora.seeds` > 1) compared on a validation split of the training
 * prompts, withheld from their training by curation: never on the held-out prompts, which only
 * the kept LoRA is evaluated on. Sampling and scoring are the evaluation's own (`evaluate.ts`),
 * under validation keys: the base's images once, each LoRA's under its trainer seed.
 */
import type { RoundInput } from '../config/round.js';
import type { ReferencesResult, RoundRequest, ValidateRequest, ValidationResult } from '../contract/activities.js';
import { artifactKeys, validationSeed, type EvaluationSide } from '../contract/keys.js';
import { validationSplit } from '../contract/seeds.js';
import { findJson, findText, putJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { compareSides, evaluationFigures, sampleComparison, type ComparisonSet } from './evaluate.js';
import { badData } from './failures.js';
import { roundInput } from './input.js';
import { withProgress } from './progress.js';
import { loadPrompts } from './prompts.js';
import { finalLoss } from './trainerMetrics.js';

/** A training prompt withheld for validation, with its index among the training prompts. */
export interface ValidationPrompt {
  readonly promptIndex: number;
  readonly className: string;
  readonly text: string;
}

/**
 * The training prompts withheld for validation, or null when the round trains one LoRA (nothing
 * to choose between, so nothing is withheld). Fails naming the field when the round has too few
 * training prompts to withhold one and still train on another.
 */
export async function validationPrompts(input: RoundInput): Promise<ValidationPrompt[] | null> {
  if (input.lora.seeds === 1 || input.prompts === null) return null;
  const prompts = await loadPrompts(input.prompts, 'prompts');
  const split = validationSplit(prompts.length, input.lora.validationShare, input.lora.validationSeed);
  if (split === null)
    throw badData(
      'InvalidInput',
      `lora.seeds: ${input.lora.seeds} LoRAs need a validation split, and ${prompts.length} training prompt(s) cannot be split (at least 2)`,
    );
  return split.map((promptIndex) => ({ promptIndex, className: prompts[promptIndex]!.className, text: prompts[promptIndex]!.text }));
}

/** The validation set of one LoRA (its images as the `tuned` side) against the base. */
function validationSet(input: RoundInput, root: string, prompts: readonly ValidationPrompt[], seed: number): ComparisonSet {
  return {
    prompts,
    seedsOf: (i) => Array.from({ length: input.evaluation.seedsPerPrompt }, (_, s) => validationSeed(input.lora.validationSeed, i, s)),
    folder: artifactKeys.validationFolder(root),
    image: (side: EvaluationSide, promptIndex, s) => artifactKeys.validationImage(root, side === 'base' ? 'base' : { seed }, promptIndex, s),
    record: (promptIndex) => artifactKeys.validationRecord(root, seed, promptIndex),
    stage: 'validate',
  };
}

async function requireSplit(input: RoundInput): Promise<ValidationPrompt[]> {
  const prompts = await validationPrompts(input);
  if (prompts === null) throw badData('InvalidInput', 'lora.seeds: validation runs only for a round of more than one LoRA');
  return prompts;
}

/** The base's validation images, which no LoRA changes: sampled once, while the LoRAs train. */
export function createSampleValidationBase(deps: ActivityDependencies) {
  return async function sampleValidationBase({ root, inputKey }: RoundRequest): Promise<ReferencesResult> {
    const input = await roundInput(deps, inputKey);
    // Only the base side is sampled, so the seed naming the (absent) LoRA side is irrelevant.
    const set = validationSet(input, root, await requireSplit(input), input.lora.seed);
    const unets = new Map<EvaluationSide, string | null>([['base', null]]);
    const images = await withProgress({ stage: 'validate', evaluated: 0 }, (progress) => sampleComparison(deps, input, set, unets, progress));
    return { images };
  };
}

/**
 * One LoRA against the base on the validation prompts, with the evaluation's sampling and scoring
 * and figures; its records and manifest under its trainer seed. The manifest, written last, is
 * returned as it is by a retry or a resumed round; stored images and records are not redone.
 */
export function createValidateLora(deps: ActivityDependencies) {
  return async function validateLora({ root, inputKey, lora, seed }: ValidateRequest): Promise<ValidationResult> {
    const input = await roundInput(deps, inputKey);
    const manifestKey = artifactKeys.validationManifest(root, seed);
    const existing = await findJson<ValidationResult & { comparison: unknown }>(deps.store, manifestKey);
    if (existing) {
      const { comparison: _comparison, ...result } = existing;
      return result;
    }
    if ((await deps.store.list(`${lora}unet/`)).length === 0)
      throw badData('MissingArtifact', `${lora}unet/: not found; the LoRA must be trained before its validation`);

    const prompts = await requireSplit(input);
    const set = validationSet(input, root, prompts, seed);
    const unets = new Map<EvaluationSide, string | null>([
      ['base', null],
      ['tuned', lora],
    ]);
    const records = await withProgress({ stage: 'validate', evaluated: 0 }, (progress) => compareSides(deps, input, set, unets, progress));
    const figures = evaluationFigures(records, input.judge.threshold, input.evaluation.bootstrapResamples);
    const result: ValidationResult = {
      manifest: manifestKey,
      seed,
      lora,
      prompts: prompts.length,
      pairs: figures.pairs,
      accuracyBase: figures.accuracyBase,
      accuracyTuned: figures.accuracyTuned,
      winRate: figures.winRate,
      finalLoss: finalLoss(await findText(deps.store, `${lora}metrics.json`)),
    };
    // The manifest keeps the whole comparison (intervals, per class); the workflow gets the summary.
    await putJson(deps.store, manifestKey, { ...result, comparison: figures });
    return result;
  };
}
