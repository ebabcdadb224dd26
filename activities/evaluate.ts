import type { RoundInput, SamplingSettings } from '../config/round.js';
import {
  currentEvaluation,
  refereeTable,
  type ClassAccuracyFigures,
  type Comparison,
  type EvaluateRequest,
  type EvaluateResult,
  type EvaluateShardRequest,
  type EvaluateShardResult,
  type RecordedEvaluation,
  type ReferencesRequest,
  type ReferencesResult,
} from '../contract/activities.js';
import { artifactKeys, evaluationSeed, shardPromptIndices, type EvaluationSide } from '../contract/keys.js';
import type { EvaluationRecord, PromptDiversity, PromptRefereeVerdicts, RefereeScore } from '../contract/records.js';
import { bootstrapInterval, meanPairwiseCosineDistance, pairedAccuracy, perClassAccuracy, signTest, winRate, type Pair } from '../models/evaluation/stats.js';
import { decodeImage, promptAttributes } from '../models/judge/index.js';
import { findJson, putJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { withProgress, type ProgressReporter } from './progress.js';
import { loadPrompts } from './prompts.js';
import { generatorSource, samplePngs } from './sampling.js';
import { roundInput } from './input.js';
import { refereeFigures } from './refereeFigures.js';

const mean = (values: readonly number[]) => values.reduce((s, v) => s + v, 0) / values.length;

/** The base-vs-tuned comparison samples as the round does, with `evaluation.guidanceScale` and `evaluation.scheduler` where they are set. */
export function comparisonSampling(input: RoundInput): SamplingSettings {
  const { evaluation, sampling } = input;
  return { ...sampling, guidanceScale: evaluation.guidanceScale ?? sampling.guidanceScale, scheduler: evaluation.scheduler ?? sampling.scheduler };
}

/**
 * The mean diversity of the reference's and the tuned generator's images over the held-out
 * prompts, when every record holds both (records of earlier versions do not; one seed per
 * prompt gives none), and the change from the reference's.
 */
function diversityFigures(records: readonly EvaluationRecord[], reference: 'base' | 'parent') {
  const perPrompt = records.map((r) => {
    const base = reference === 'base' ? r.diversity?.base : r.diversity?.parent;
    const tuned = r.diversity?.tuned;
    return base === undefined || base === null || tuned === undefined ? null : { base, tuned };
  });
  const complete = perPrompt.filter((d) => d !== null);
  if (complete.length === 0 || complete.length < records.length) return { diversityBase: null, diversityTuned: null, diversityChange: null };
  const diversityBase = mean(complete.map((d) => d.base));
  const diversityTuned = mean(complete.map((d) => d.tuned));
  return { diversityBase, diversityTuned, diversityChange: diversityBase > 0 ? diversityTuned / diversityBase - 1 : null };
}

/**
 * Counting accuracy against one reference: over the images of held-out prompts that state a
 * count, whether the detector's instance count equals it. Null when no prompt states a count, or
 * when a record (of an earlier version) lacks the stated count or an image's instance count.
 */
function countFigures(records: readonly EvaluationRecord[], reference: 'base' | 'parent', resamples: number) {
  const none = { countAccuracyBase: null, countAccuracyTuned: null, countGainInterval: null };
  const scores = (r: EvaluationRecord) => (reference === 'base' ? r.base : (r.parent ?? []));
  const complete = records.every((r) => r.statedCount !== undefined && [...scores(r), ...r.tuned].every((s) => s.instances !== undefined));
  if (!complete) return none;
  const hits: Pair[] = records.flatMap((r) =>
    r.statedCount === null || r.statedCount === undefined
      ? []
      : r.seeds.map((seed, s) => ({
          prompt: String(r.promptIndex),
          seed,
          base: Number(scores(r)[s]!.instances === r.statedCount),
          tuned: Number(r.tuned[s]!.instances === r.statedCount),
        })),
  );
  if (hits.length === 0) return none;
  const counting = pairedAccuracy(hits, resamples);
  return { countAccuracyBase: counting.base, countAccuracyTuned: counting.tuned, countGainInterval: counting.gainInterval };
}

/**
 * The tuned generator against one reference, from the per-prompt records: paired CLIP win rate,
 * detector accuracy gain and counting accuracy gain, each with a bootstrap interval over prompts;
 * diversity.
 */
function comparison(records: readonly EvaluationRecord[], reference: 'base' | 'parent', threshold: number, resamples: number): Comparison {
  const scores = (r: EvaluationRecord) => (reference === 'base' ? r.base : (r.parent ?? []));
  const pairs: Pair[] = records.flatMap((r) =>
    r.seeds.map((seed, s) => ({ prompt: String(r.promptIndex), seed, base: scores(r)[s]!.clip, tuned: r.tuned[s]!.clip })),
  );
  const outcomes = records.flatMap((r) =>
    r.seeds.map((seed, s) => ({
      prompt: String(r.promptIndex),
      seed,
      className: r.className,
      base: scores(r)[s]!.detection >= threshold,
      tuned: r.tuned[s]!.detection >= threshold,
    })),
  );
  // Detected or not as 1 or 0: the mean of tuned minus base is the accuracy gain.
  const detections: Pair[] = outcomes.map((o) => ({ prompt: o.prompt, seed: o.seed, base: Number(o.base), tuned: Number(o.tuned) }));
  const perClass: Record<string, ClassAccuracyFigures> = {};
  for (const [className, a] of perClassAccuracy(outcomes)) perClass[className] = { pairs: a.pairs, base: a.base, tuned: a.tuned };
  const interval = bootstrapInterval(pairs, winRate, { resamples, seed: 0 });
  const accuracy = pairedAccuracy(detections, resamples);
  return {
    pairs: pairs.length,
    winRate: winRate(pairs),
    winRateInterval: [interval[0], interval[1]],
    meanClipBase: mean(pairs.map((p) => p.base)),
    meanClipTuned: mean(pairs.map((p) => p.tuned)),
    signTestP: signTest(pairs),
    accuracyBase: accuracy.base,
    accuracyTuned: accuracy.tuned,
    accuracyGainInterval: accuracy.gainInterval,
    ...diversityFigures(records, reference),
    ...countFigures(records, reference, resamples),
    perClass,
    referee: refereeFigures(records, reference, resamples),
  };
}

/** The headline figures: the tuned generator against the base, and against the parent when the records hold its scores. */
export function evaluationFigures(records: readonly EvaluationRecord[], threshold: number, resamples: number): Omit<EvaluateResult, 'manifest'> {
  const hasParent = records.length > 0 && records.every((r) => r.parent !== null);
  return { ...comparison(records, 'base', threshold, resamples), parent: hasParent ? comparison(records, 'parent', threshold, resamples) : null };
}

/**
 * Prompts a comparison samples, each at its seeds on every side, and where its images and
 * per-prompt records are kept: the held-out prompts of the evaluation, or the validation split of
 * the training prompts on which several LoRAs are compared (`validate.ts`).
 */
export interface ComparisonSet {
  readonly prompts: readonly { promptIndex: number; className: string; text: string }[];
  readonly seedsOf: (promptIndex: number) => number[];
  /** The prefix every image key of the set starts with (listed once to find what is stored). */
  readonly folder: string;
  readonly image: (side: EvaluationSide, promptIndex: number, s: number) => string;
  readonly record: (promptIndex: number) => string;
  /** The stage its heartbeats and image timings name. */
  readonly stage: 'evaluate' | 'validate';
}

/** The stored images of one prompt on one side, decoded, with their keys. */
async function comparisonImages(deps: ActivityDependencies, set: ComparisonSet, side: EvaluationSide, promptIndex: number) {
  const keys = set.seedsOf(promptIndex).map((_, s) => set.image(side, promptIndex, s));
  const images = await Promise.all(keys.map(async (k) => decodeImage(await deps.store.get(k), k)));
  return { keys, images };
}

type ComparisonImages = Awaited<ReturnType<typeof comparisonImages>>;

/**
 * The referee's verdicts on a prompt's images per side, each beside whether the curation judge
 * accepted the image (its detection at `judge.threshold`, as the detector accuracy counts it).
 */
async function refereeHeldOutPrompt(
  deps: ActivityDependencies,
  input: RoundInput,
  sides: readonly EvaluationSide[],
  prompt: { promptIndex: number; className: string; text: string },
  read: ReadonlyMap<EvaluationSide, ComparisonImages>,
  judged: Readonly<Record<EvaluationSide, readonly { readonly detection: number }[] | null>>,
): Promise<PromptRefereeVerdicts | null> {
  const settings = input.evaluation.referee;
  if (settings === null) return null;
  return deps.runtime.withReferee(settings, async (referee) => {
    const verdicts = async (side: EvaluationSide): Promise<RefereeScore[]> => {
      const found = await referee.grade(prompt.text, prompt.className, read.get(side)!.images);
      return found.map((v, s) => ({ ...v, judgeAccepted: judged[side]![s]!.detection >= input.judge.threshold }));
    };
    const synonyms = settings.synonyms[prompt.className.toLowerCase()] ?? [];
    const wanted = promptAttributes(prompt.text, prompt.className, synonyms, settings.colours, settings.backgrounds);
    const base = await verdicts('base');
    const parent = sides.includes('parent') ? await verdicts('parent') : null;
    const tuned = await verdicts('tuned');
    return { colour: wanted.colour, background: wanted.background, base, parent, tuned };
  });
}

/**
 * Scores a prompt's stored images on each side with the judge and, on the held-out prompts, the
 * referee, and stores its record. The validation split that chooses among several LoRAs is scored
 * by the judge alone: a referee that chose would be optimised against.
 */
export async function scoreComparisonPrompt(
  deps: ActivityDependencies,
  input: RoundInput,
  set: ComparisonSet,
  sides: readonly EvaluationSide[],
  prompt: { promptIndex: number; className: string; text: string },
): Promise<EvaluationRecord> {
  const seeds = set.seedsOf(prompt.promptIndex);
  // Decoded once: the judge and the referee read the same images.
  const read = new Map<EvaluationSide, ComparisonImages>();
  for (const side of sides) read.set(side, await comparisonImages(deps, set, side, prompt.promptIndex));
  const judged = await deps.runtime.withJudge(input.judge, async (judge) => {
    const score = async (side: EvaluationSide) => {
      const { keys, images } = read.get(side)!;
      const verdict = await judge.judge(prompt.text, prompt.className, images);
      const embeddings = verdict.judgements.map((j) => j.clip?.embedding ?? null);
      return {
        scores: verdict.judgements.map((j, s) => ({
          key: keys[s]!,
          clip: j.clip?.score100 ?? 0,
          detection: j.detection.confidence,
          instances: j.detection.instances,
        })),
        // The prompt's, so the same for every image.
        statedCount: verdict.judgements[0]?.detection.statedCount ?? null,
        // The embeddings are not stored: the record keeps only the prompt's diversity.
        diversity: embeddings.every((e) => e !== null) ? meanPairwiseCosineDistance(embeddings) : null,
      };
    };
    const base = await score('base');
    const parent = sides.includes('parent') ? await score('parent') : null;
    const tuned = await score('tuned');
    return { base, parent, tuned };
  });
  const { base, parent, tuned } = judged;
  const diversity: PromptDiversity | null =
    base.diversity === null || tuned.diversity === null || (parent !== null && parent.diversity === null)
      ? null
      : { base: base.diversity, parent: parent?.diversity ?? null, tuned: tuned.diversity };
  // After the judge, not inside it: the referee's models are loaded beside the judge's, not in place of them.
  const referee =
    set.stage === 'evaluate'
      ? await refereeHeldOutPrompt(deps, input, sides, prompt, read, { base: base.scores, parent: parent?.scores ?? null, tuned: tuned.scores })
      : null;
  const record: EvaluationRecord = {
    ...prompt,
    seeds,
    statedCount: tuned.statedCount,
    base: base.scores,
    parent: parent?.scores ?? null,
    tuned: tuned.scores,
    diversity,
    referee,
  };
  await putJson(deps.store, set.record(prompt.promptIndex), record);
  return record;
}

/** A round's held-out prompts, with their indices and seeds, and the evaluation's keys. */
async function heldOut(input: RoundInput, root: string): Promise<ComparisonSet> {
  const prompts = (await loadPrompts(input.evaluation.prompts, 'evaluation.prompts')).map((p, promptIndex) => ({ ...p, promptIndex }));
  const seedsOf = (i: number) => Array.from({ length: input.evaluation.seedsPerPrompt }, (_, s) => evaluationSeed(input.evaluation.seed, i, s));
  return {
    prompts,
    seedsOf,
    folder: `${root}/evaluation/`,
    image: (side, promptIndex, s) => artifactKeys.evaluationImage(root, side, promptIndex, s),
    record: (promptIndex) => artifactKeys.evaluationRecord(root, promptIndex),
    stage: 'evaluate',
  };
}

/**
 * Samples the images of `sides` that are not stored yet (held-out, or validation), one generator
 * at a time (all its images, then the next), from identical initial noise (the same seeds) on
 * every side. Returns how many images the sides hold.
 */
export async function sampleComparison(
  deps: ActivityDependencies,
  input: RoundInput,
  set: ComparisonSet,
  unets: ReadonlyMap<EvaluationSide, string | null>,
  progress: ProgressReporter,
): Promise<number> {
  const { prompts, seedsOf, stage } = set;
  const sampling = comparisonSampling(input);
  const stored = new Set(await deps.store.list(set.folder));
  let evaluated = 0;
  for (const [side, unet] of unets) {
    const missing = (p: { promptIndex: number }) => seedsOf(p.promptIndex).some((_, s) => !stored.has(set.image(side, p.promptIndex, s)));
    const todo = prompts.filter(missing);
    evaluated += (prompts.length - todo.length) * input.evaluation.seedsPerPrompt;
    if (todo.length === 0) continue;
    const source = await generatorSource(deps, input.generator.base, unet);
    await deps.runtime.withGenerator(source, async (generator) => {
      for (const prompt of todo) {
        progress.checkCancelled();
        const started = performance.now();
        const pngs = await samplePngs(generator, sampling, prompt, seedsOf(prompt.promptIndex), () => progress.report({ stage, evaluated }));
        deps.metrics.imageSeconds.record((performance.now() - started) / 1000 / Math.max(1, pngs.length), { stage });
        for (const [s, png] of pngs.entries()) await deps.store.put(set.image(side, prompt.promptIndex, s), png);
        evaluated += pngs.length;
        progress.report({ stage, evaluated });
      }
    });
  }
  return evaluated;
}

/**
 * Samples what `unets` lack of the set, then scores each prompt whose record is not stored yet;
 * the records of every prompt, in order.
 */
export async function compareSides(
  deps: ActivityDependencies,
  input: RoundInput,
  set: ComparisonSet,
  unets: ReadonlyMap<EvaluationSide, string | null>,
  progress: ProgressReporter,
): Promise<EvaluationRecord[]> {
  const evaluated = await sampleComparison(deps, input, set, unets, progress);
  const sides = [...unets.keys()];
  const scored: EvaluationRecord[] = [];
  for (const prompt of set.prompts) {
    progress.checkCancelled();
    const found = await findJson<EvaluationRecord>(deps.store, set.record(prompt.promptIndex));
    scored.push(found ?? (await scoreComparisonPrompt(deps, input, set, sides, prompt)));
    progress.report({ stage: set.stage, evaluated });
  }
  return scored;
}

/** The references a round's tuned generator is compared with: the base, and the parent it sampled from when that is a tuned one. */
const references = (parent: string | null): Map<EvaluationSide, string | null> =>
  new Map<EvaluationSide, string | null>(
    parent === null
      ? [['base', null]]
      : [
          ['base', null],
          ['parent', parent],
        ],
  );

/** The held-out prompts of shard `shard` of `shards`, as sampling splits the training prompts; a bad shard is bad input. */
function heldOutShard(set: ComparisonSet, shard: number, shards: number): ComparisonSet {
  if (!Number.isInteger(shards) || shards < 1 || !Number.isInteger(shard) || shard < 0 || shard >= shards) {
    throw badData('InvalidInput', `shard: ${shard} of ${shards} shards; expected an integer in [0, shards) and shards >= 1`);
  }
  return { ...set, prompts: shardPromptIndices(set.prompts.length, shards, shard).map((i) => set.prompts[i]!) };
}

/**
 * The held-out images of the references (or of one `part` of the held-out prompts), which do not
 * depend on the LoRA: a round samples them while its LoRA trains, on another GPU worker when it
 * has one. The evaluation then finds them stored.
 */
export function createSampleReferences(deps: ActivityDependencies) {
  return async function sampleReferences({ root, inputKey, parent, part }: ReferencesRequest): Promise<ReferencesResult> {
    const input = await roundInput(deps, inputKey);
    const held = await heldOut(input, root);
    const set = part === undefined ? held : heldOutShard(held, part.shard, part.shards);
    const images = await withProgress({ stage: 'evaluate', evaluated: 0 }, (progress) => sampleComparison(deps, input, set, references(parent), progress));
    return { images };
  };
}

/** The LoRA's fused UNet must be stored before anything samples from it. */
async function requireTrainedUnet(deps: ActivityDependencies, lora: string): Promise<void> {
  if ((await deps.store.list(`${lora}unet/`)).length === 0)
    throw badData('MissingArtifact', `${lora}unet/: not found; the LoRA must be trained before evaluation`);
}

/**
 * One slice of the evaluation (the held-out prompts split as sampling splits the training
 * prompts), so that the tuned generator's held-out images are sampled and judged on every GPU
 * worker at once: the shard's images the sides lack (the tuned generator's; the references' are
 * usually stored already) and each of its prompts' records. Stored images and records are
 * skipped, so a retry resumes. `evaluateRound` then finds them all stored and computes the figures.
 */
export function createEvaluateShard(deps: ActivityDependencies) {
  return async function evaluateShard({ root, inputKey, lora, parent, shard, shards }: EvaluateShardRequest): Promise<EvaluateShardResult> {
    const input = await roundInput(deps, inputKey);
    await requireTrainedUnet(deps, lora);
    const slice = heldOutShard(await heldOut(input, root), shard, shards);
    const unets = references(parent).set('tuned', lora);
    const records = await withProgress({ stage: 'evaluate', shard, evaluated: 0 }, (progress) => compareSides(deps, input, slice, unets, progress));
    return { shard, prompts: records.length, images: records.length * unets.size * input.evaluation.seedsPerPrompt };
  };
}

/**
 * Held-out prompts × seeds, sampled from identical initial noise (same seeds) by the base, by
 * the parent the round sampled from when that is a tuned one, and by the tuned generator, and
 * scored by the judge's CLIP and detector, and by the referee when the round names one. Stored
 * images and records are skipped: the references' are usually there already, and a round's
 * evaluation shards (`evaluateShard`) store every image and record before this runs, leaving it
 * the figures. The manifest, with the figures, is written last.
 */
export function createEvaluateRound(deps: ActivityDependencies) {
  return async function evaluateRound({ root, inputKey, lora, parent, seeds }: EvaluateRequest): Promise<EvaluateResult> {
    const input = await roundInput(deps, inputKey);
    const manifestKey = artifactKeys.evaluateManifest(root);
    // A manifest an earlier version wrote lacks the later figures: they read as null.
    const existing = await findJson<RecordedEvaluation>(deps.store, manifestKey);
    if (existing) return currentEvaluation(existing);
    await requireTrainedUnet(deps, lora);

    const set = await heldOut(input, root);
    const unets = references(parent).set('tuned', lora);
    const records = await withProgress({ stage: 'evaluate', evaluated: 0 }, (progress) => compareSides(deps, input, set, unets, progress));
    const result: EvaluateResult = {
      manifest: manifestKey,
      ...evaluationFigures(records, input.judge.threshold, input.evaluation.bootstrapResamples),
      ...(seeds === undefined ? {} : { seeds }),
    };
    await putJson(deps.store, manifestKey, result);
    deps.metrics.evaluationWinRate.record(result.winRate, {});
    deps.metrics.evaluationAccuracy.record(result.accuracyBase, { side: 'base' });
    deps.metrics.evaluationAccuracy.record(result.accuracyTuned, { side: 'tuned' });
    if (result.referee !== null) {
      // The judge's accuracy is `evaluationAccuracy` already.
      for (const row of refereeTable(result.referee).table.filter((r) => r.metric !== 'judgeAccepted')) {
        deps.metrics.evaluationReferee.record(row.base, { check: row.metric, side: 'base' });
        deps.metrics.evaluationReferee.record(row.tuned, { check: row.metric, side: 'tuned' });
      }
      deps.metrics.evaluationFlaggedClasses.record(result.referee.flaggedClasses.length, {});
    }
    return result;
  };
}
