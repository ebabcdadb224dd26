import type { PairedShare, RecordedComparison } from '../contract/activities.js';
import type { RoundFigures, RoundResult } from '../contract/workflows.js';
import type { RoundProgress } from '../contract/progress.js';
/** One-line renderings of a round's `progress` query and its result, for the terminal. Pure. */

export function bar(fraction: number, width = 20): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
const signed = (x: number, digits = 1) => `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;

/** The detector accuracy gain in percentage points, with its 95% interval when the result has one (earlier versions' do not). */
export function accuracyGainText(c: RecordedComparison): string {
  const gain = `${signed(100 * (c.accuracyTuned - c.accuracyBase))} points`;
  const interval = c.accuracyGainInterval ?? null;
  return interval === null ? gain : `${gain} (95% interval ${signed(100 * interval[0])} to ${signed(100 * interval[1])})`;
}

/** Diversity of the reference's and the tuned generator's images, and its change; why it is missing when it is. */
export function diversityText(c: RecordedComparison): string {
  const base = c.diversityBase ?? null;
  const tuned = c.diversityTuned ?? null;
  if (base === null || tuned === null) return 'diversity not measured (it needs two or more held-out seeds per prompt)';
  const change = c.diversityChange ?? null;
  return `diversity ${base.toFixed(4)} -> ${tuned.toFixed(4)}${change === null ? '' : ` (${signed(100 * change)}%)`}`;
}

/** Counting accuracy of the reference and the tuned generator, with the gain's 95% interval; why it is missing when it is. */
export function countingText(c: RecordedComparison): string {
  const base = c.countAccuracyBase ?? null;
  const tuned = c.countAccuracyTuned ?? null;
  if (base === null || tuned === null) return 'counting not measured (no held-out prompt states a count, or the round predates it)';
  const gain = `${signed(100 * (tuned - base))} points`;
  const interval = c.countGainInterval ?? null;
  return `counting accuracy ${percent(base)} -> ${percent(tuned)}, gain ${interval === null ? gain : `${gain} (95% interval ${signed(100 * interval[0])} to ${signed(100 * interval[1])})`}`;
}

/** The referee's GenEval-style headline (all correct per prompt, object present) and the classes its hacking check flags; null without a referee. */
export function refereeText(c: RecordedComparison): string | null {
  const r = c.referee ?? null;
  if (r === null) return null;
  const share = (name: string, s: PairedShare) =>
    `${name} ${percent(s.base)} -> ${percent(s.tuned)} (gain 95% interval ${signed(100 * s.gainInterval[0])} to ${signed(100 * s.gainInterval[1])})`;
  const flagged =
    r.flaggedClasses.length === 0 ? 'no class flagged' : `FLAGGED (judge accepts, referee rejects, more than before): ${r.flaggedClasses.join(', ')}`;
  return `referee: ${share('all correct per prompt', r.allCorrectPrompts)}; ${share('object present', r.objectPresent)}; ${flagged}`;
}

export function progressLine(p: RoundProgress): string {
  const head = `round ${p.round} ${p.stage.padEnd(8)}`;
  switch (p.stage) {
    case 'prepare':
      return `${head} checking the input, its files and models`;
    case 'sample':
      return `${head} ${bar(p.shards.sampled / p.shards.total)} shards ${p.shards.sampled}/${p.shards.total}, ${p.images.sampled} images`;
    case 'judge':
      return `${head} ${bar(p.images.sampled === 0 ? 0 : p.images.judged / p.images.sampled)} ${p.images.judged}/${p.images.sampled} images judged`;
    case 'curate':
      return `${head} keeping each prompt's best images of ${p.images.judged} judged`;
    case 'train': {
      const t = p.trainer;
      if (t === null || t.steps === 0) return `${head} starting the trainer`;
      return `${head} ${bar(t.step / t.steps)} step ${t.step}/${t.steps}${t.loss === null ? '' : `, loss ${t.loss.toFixed(4)}`}`;
    }
    case 'validate': {
      const l = p.loras;
      if (l === undefined) return head;
      const drawing = l.validating === undefined ? '' : `, ${l.validating} images drawn`;
      return `${head} ${bar(l.validated / l.total)} ${l.validated}/${l.total} LoRAs validated on the withheld training prompts${drawing}`;
    }
    case 'evaluate':
      return `${head} ${p.evaluated} held-out images sampled`;
    case 'report':
      return `${head} writing the report`;
    default:
      return `${head} ${p.winRate === null ? '' : `win rate ${percent(p.winRate)}`}`;
  }
}

/** A round of several LoRAs: each one's validation figures, the kept one marked, and the spread of their gains. */
function seedsLines(result: RoundResult): string[] {
  const seeds = result.training.seeds;
  if (seeds === undefined) return [];
  const g = seeds.accuracyGain;
  return [
    `  ${seeds.perSeed.length} LoRAs by trainer seed, on ${seeds.validationPrompts} withheld training prompts (${seeds.validationPairs} images each): kept seed ${seeds.kept}; validation accuracy gain ${signed(100 * g.min)} to ${signed(100 * g.max)} points, mean ${signed(100 * g.mean)}, sd ${(100 * g.sd).toFixed(1)}`,
    ...seeds.perSeed.map(
      (s) =>
        `    seed ${s.seed}${s.kept ? ' (kept)' : ''}: accuracy ${percent(s.accuracy)} (${signed(100 * s.accuracyGain)} points), win rate ${percent(s.winRate)}, final loss ${s.finalLoss?.toFixed(4) ?? '-'}`,
    ),
  ];
}

export function roundSummary(result: RoundResult): string {
  const e = result.evaluation;
  const classes = Object.entries(result.dataset.perClass)
    .map(([cls, c]) => `${cls} ${c.kept} kept / ${c.dropped} dropped`)
    .join(', ');
  return [
    `Round ${result.round}: tuned beats base in ${percent(e.winRate)} of ${e.pairs} pairs (95% interval ${percent(e.winRateInterval[0])}-${percent(e.winRateInterval[1])}, sign test p = ${e.signTestP.toPrecision(3)})`,
    `  mean CLIP score: base ${e.meanClipBase.toFixed(2)}, tuned ${e.meanClipTuned.toFixed(2)}; detector accuracy: base ${percent(e.accuracyBase)}, tuned ${percent(e.accuracyTuned)}, gain ${accuracyGainText(e)}`,
    `  image ${diversityText(e)}`,
    `  ${countingText(e)}`,
    ...(refereeText(e) === null ? [] : [`  ${refereeText(e)}`]),
    ...(e.parent === null
      ? []
      : [
          `  against its parent: tuned wins ${percent(e.parent.winRate)} (95% interval ${percent(e.parent.winRateInterval[0])}-${percent(e.parent.winRateInterval[1])}); accuracy gain ${accuracyGainText(e.parent)}; ${diversityText(e.parent)}; ${countingText(e.parent)}`,
        ]),
    `  dataset: ${result.dataset.kept} images kept, ${result.dataset.dropped} prompts dropped (${classes}); LoRA: ${result.training.steps} steps, final loss ${result.training.finalLoss?.toFixed(4) ?? '-'}`,
    ...seedsLines(result),
    `  report: ${result.report.location}`,
  ].join('\n');
}

export function campaignLine(rounds: readonly RoundFigures[]): string {
  if (rounds.length === 0) return 'campaign: first round running';
  return `campaign: ${rounds.length} round(s) done; win rates ${rounds.map((r) => percent(r.winRate)).join(', ')}`;
}
