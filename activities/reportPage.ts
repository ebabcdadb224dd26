/**
 * The round report as one HTML page, from the round's records. Its images are relative links to
 * the PNGs the round stored beside it, not inlined, so the page stays small however large the
 * images. Pure.
 */
import type { GateVerdict } from '../config/gate.js';
import type { RoundInput } from '../config/round.js';
import type { Comparison, CurateResult, EvaluateResult, PairedShare, RefereeFigures, RunIdentity, TrainResult } from '../contract/activities.js';
import type { EvaluationRecord, PromptScores } from '../contract/records.js';
import type { HumanFigures } from '../models/evaluation/humanVotes.js';
import { escapeHtml as escape } from './html.js';
import { histogramSvg, lossCurveSvg } from './reportCharts.js';
import { relativeUrl } from './reportLinks.js';
import { hacked } from './refereeFigures.js';
import { heldOutPairs, spreadPairs, verdictChanges, type HeldOutPair } from './reportPairs.js';
import { seedsSection } from './reportSeeds.js';
import type { LossCurve } from './trainerMetrics.js';

export interface ReportData {
  /** The report's own key: images are linked relative to it. */
  readonly page: string;
  readonly run: RunIdentity;
  readonly input: RoundInput;
  readonly gate: GateVerdict | null;
  readonly scores: readonly PromptScores[];
  readonly curation: CurateResult;
  readonly training: TrainResult;
  readonly lossCurve: LossCurve;
  readonly evaluation: EvaluateResult;
  readonly evaluationRecords: readonly EvaluationRecord[];
}

/** Example pairs shown per class of each kind of verdict change (fixes, regressions). */
export const EXAMPLES_PER_CHANGE = 3;

const fixed = (x: number, digits = 3) => x.toFixed(digits);
const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

const points = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;

/** The detector accuracy gain with its interval, and diversity, of one comparison; `reference` names the `...Base` side. */
function gainAndDiversity(c: Comparison, reference: string): string {
  const gain = c.accuracyTuned - c.accuracyBase;
  const interval = c.accuracyGainInterval === null ? '' : ` (95% interval ${points(c.accuracyGainInterval[0])} to ${points(c.accuracyGainInterval[1])})`;
  const diversity =
    c.diversityBase === null || c.diversityTuned === null
      ? 'Diversity: not measured (it needs two or more held-out seeds per prompt).'
      : `Diversity (mean pairwise CLIP image distance across a prompt's seeds): ${reference} ${fixed(c.diversityBase, 4)}, tuned ${fixed(c.diversityTuned, 4)}${c.diversityChange === null ? '' : ` (${points(c.diversityChange)}%)`}.`;
  const counting =
    c.countAccuracyBase === null || c.countAccuracyTuned === null
      ? ''
      : ` Counting accuracy (detector's instance count is the prompt's): ${reference} ${percent(c.countAccuracyBase)}, tuned ${percent(c.countAccuracyTuned)}${c.countGainInterval === null ? '' : ` (gain 95% interval ${points(c.countGainInterval[0])} to ${points(c.countGainInterval[1])} points)`}.`;
  return `Accuracy gain ${points(gain)} points${interval}. ${diversity}${counting}`;
}

function img(data: ReportData, key: string, title: string): string {
  return `<img src="${escape(relativeUrl(data.page, key))}" loading="lazy" title="${escape(title)}" alt="${escape(title)}">`;
}

function rankedImages(scores: readonly PromptScores[]) {
  return scores.flatMap((prompt) => prompt.images.map((image) => ({ prompt, image }))).sort((a, b) => b.image.combined - a.image.combined);
}

/** A held-out pair side by side, base left, with the prompt and both sides' detection and CLIP figures. */
function pairCard(data: ReportData, p: HeldOutPair): string {
  return (
    `<div class="card pair">${img(data, p.base.key, `base, seed ${p.seed}`)}${img(data, p.tuned.key, `tuned, seed ${p.seed}`)}<p>${escape(p.text)}</p>` +
    `<p class="small">class ${escape(p.className)} · seed ${p.seed} · detection ${fixed(p.base.detection, 2)} → ${fixed(p.tuned.detection, 2)}${
      p.referee === null ? '' : ` · referee ${fixed(p.referee.base.presence, 2)} → ${fixed(p.referee.tuned.presence, 2)}`
    } · CLIP ${fixed(p.base.clip, 2)} → ${fixed(p.tuned.clip, 2)}</p></div>`
  );
}

/** A share's row of the GenEval-style table: metric, reference, tuned, gain with its interval. */
function shareRow(metric: string, share: PairedShare | null, n: string): string {
  if (share === null) return `<tr><td>${escape(metric)}</td><td colspan="3">not asked by any held-out prompt</td><td>0</td></tr>`;
  return `<tr><td>${escape(metric)}</td><td>${percent(share.base)}</td><td>${percent(share.tuned)}</td><td>${points(share.gain)} [${points(share.gainInterval[0])}, ${points(share.gainInterval[1])}]</td><td>${share.n} ${n}</td></tr>`;
}

/** The GenEval-style rows of a referee's figures, in the order the table shows them. */
export function refereeRows(r: RefereeFigures): ReadonlyArray<readonly [string, PairedShare | null, string]> {
  return [
    ['object present (referee)', r.objectPresent, 'images'],
    ['counting (referee)', r.counting, 'images'],
    ['colour (referee)', r.colour, 'images'],
    ['background (referee)', r.background, 'images'],
    ['all correct, per image', r.allCorrectImages, 'images'],
    ['all correct, per prompt', r.allCorrectPrompts, 'prompts'],
    ['accepted by the curation judge', r.judgeAccepted, 'images'],
  ];
}

/**
 * The referee's GenEval-style table against one reference, and the hacking check: per class, the
 * share of images the curation judge accepts and the referee finds no class in. A flagged class
 * (the share rose beyond noise) is highlighted.
 */
function refereeSection(data: ReportData, r: RefereeFigures, reference: string): string {
  const referee = data.input.evaluation.referee;
  const settings =
    referee === null
      ? ''
      : ` (detector <code>${escape(referee.detector)}</code>, present at ${referee.presenceThreshold}, counted at ${referee.countThreshold}; colour and background by CLIP <code>${escape(referee.clip)}</code>)`;
  const rows = refereeRows(r)
    .map(([metric, share, n]) => shareRow(metric, share, n))
    .join('');
  const hacking = Object.entries(r.hacking)
    .map(
      ([cls, h]) =>
        `<tr${h.flagged ? ' class="flagged"' : ''}><td>${escape(cls)}${h.flagged ? ' ⚑' : ''}</td><td>${h.images}</td><td>${percent(h.base)}</td><td>${percent(h.tuned)}</td><td>${points(h.change)} [${points(h.changeInterval[0])}, ${points(h.changeInterval[1])}]</td><td>${points(h.judgeGain)}</td><td>${points(h.refereeGain)}</td></tr>`,
    )
    .join('');
  // The flagged classes' tuned images the judge accepts and the referee rejects, where the reference's was not: the images to look at.
  const suspects = (cls: string) =>
    heldOutPairs(data.evaluationRecords)
      .filter((p) => p.className === cls && p.referee !== null && hacked(p.referee.tuned) && !hacked(p.referee.base))
      .slice(0, EXAMPLES_PER_CHANGE);
  const flagged =
    r.flaggedClasses.length === 0
      ? '<p>No class flagged: no class’s accepted-but-absent share rose beyond noise.</p>'
      : `<p class="flagged"><b>Flagged: ${r.flaggedClasses.map(escape).join(', ')}</b> — the curation judge accepts more of these classes’ images that the referee finds no class in than it did for ${reference}, beyond noise: the generator may be pleasing the judge rather than drawing the class. Look at those images.</p>` +
        (reference === 'base'
          ? r.flaggedClasses
              .map((cls) => {
                const pairs = suspects(cls);
                return pairs.length === 0
                  ? ''
                  : `<h4>${escape(cls)}: tuned images the judge accepts and the referee rejects (up to ${EXAMPLES_PER_CHANGE})</h4><div class="cards">${pairs.map((p) => pairCard(data, p)).join('')}</div>`;
              })
              .join('')
          : '');
  return (
    `<h3>Against ${reference}: GenEval-style figures by the referee</h3>` +
    `<p>The referee is a judge that never chose a training image${settings}. Gains are in points with their 95% paired bootstrap interval over prompts.</p>` +
    `<table><tr><th>metric</th><th>${reference}</th><th>tuned</th><th>gain [95% interval]</th><th>over</th></tr>${rows}</table>` +
    `<h3>Against ${reference}: hacking check</h3>` +
    `<p>Per class, the share of images the curation judge accepts (detection ≥ ${data.input.judge.threshold}) and the referee finds no class in; a class is flagged when the interval of its change starts above 0. Beside it the judge's and the referee's accuracy gains on the class.</p>` +
    `<table><tr><th>class</th><th>images</th><th>${reference}</th><th>tuned</th><th>change [95% interval]</th><th>judge gain</th><th>referee gain</th></tr>${hacking}</table>${flagged}`
  );
}

/** The referee's sections, against the base and the parent; empty without a referee. */
function refereeSections(data: ReportData): string {
  const { evaluation } = data;
  if (evaluation.referee === null) return '';
  const parent = evaluation.parent?.referee ?? null;
  return `<h2>Referee</h2>${refereeSection(data, evaluation.referee, 'base')}${parent === null ? '' : refereeSection(data, parent, 'parent')}`;
}

/**
 * Per class, the pairs whose verdict the round flipped, counted and with examples. With a referee
 * the verdicts are its object-present check; without one they are the curation judge's detector,
 * which the loop trains the generator to please.
 */
function changesSection(data: ReportData): string {
  const threshold = data.input.judge.threshold;
  const byReferee = data.evaluation.referee !== null;
  const classes = verdictChanges(data.evaluationRecords, byReferee ? 'referee' : threshold);
  const rows = classes
    .map((c) => {
      const pairs = c.fixes.length + c.regressions.length + c.unchangedRight + c.unchangedWrong;
      const net = c.fixes.length - c.regressions.length;
      return `<tr><td>${escape(c.className)}</td><td>${pairs}</td><td>${c.fixes.length}</td><td>${c.regressions.length}</td><td>${c.unchangedRight}</td><td>${c.unchangedWrong}</td><td>${net > 0 ? '+' : ''}${net}</td></tr>`;
    })
    .join('');
  const examples = (kind: string, pairs: readonly HeldOutPair[]) =>
    pairs.length === 0
      ? ''
      : `<h4>${kind} (${pairs.length}${pairs.length > EXAMPLES_PER_CHANGE ? `, the ${EXAMPLES_PER_CHANGE} largest confidence changes shown` : ''})</h4><div class="cards">${pairs
          .slice(0, EXAMPLES_PER_CHANGE)
          .map((p) => pairCard(data, p))
          .join('')}</div>`;
  const perClass = classes
    .filter((c) => c.fixes.length + c.regressions.length > 0)
    .map((c) => `<h3>${escape(c.className)}</h3>${examples('Fixes', c.fixes)}${examples('Regressions', c.regressions)}`)
    .join('');
  const whose = byReferee
    ? `A <b>fix</b> is a pair whose base image the referee finds no class in (confidence below its presence threshold ${data.input.evaluation.referee?.presenceThreshold ?? ''}) and whose tuned image it finds the class in; a <b>regression</b> is the reverse. ` +
      `These verdicts are the referee's, a judge that chose no training image, so they are a check independent of the curation judge the loop trains the generator to please.`
    : `A <b>fix</b> is a pair whose base image the detector misses the class in (confidence below the judge's threshold ${threshold}) and whose tuned image it finds it in; a <b>regression</b> is the reverse. ` +
      `These verdicts are the curation judge's own detector, the one this loop trains the generator to please, so they show what the round changed in the judge's eyes, not an independent check: look at the images.`;
  return (
    `<h2>What the round fixed and broke${byReferee ? ' (by the referee)' : ''}</h2>` +
    `<p>A pair is one held-out prompt and seed, base and tuned drawn from the same initial noise. ${whose}</p>` +
    `<table><tr><th>class</th><th>pairs</th><th>fixes</th><th>regressions</th><th>unchanged right</th><th>unchanged wrong</th><th>net</th></tr>${rows}</table>` +
    (perClass === '' ? '<p>No pair changed its verdict.</p>' : perClass)
  );
}

function trainingSection(data: ReportData): string {
  const curve = data.lossCurve;
  return `<h2>Training loss</h2>${'losses' in curve ? lossCurveSvg(curve.losses) : `<p>No loss curve: ${escape(curve.unavailable)}.</p>`}`;
}

/** The human-review section sits between these, so `selfreward review` can replace it as votes arrive. */
const HUMAN_REVIEW_START = '<!-- human-review -->';
const HUMAN_REVIEW_END = '<!-- /human-review -->';

/** People's verdict on the blind pairs: the win rate of their votes, or how to collect some. */
export function humanReviewSection(figures: HumanFigures | null): string {
  const body =
    figures === null
      ? "<p>No votes yet. <code>selfreward review</code> with this round's workflow id serves a blind A/B page of the held-out pairs; the figures of its votes show here.</p>"
      : `<p class="headline">People prefer tuned in <b>${percent(figures.winRate)}</b> of ${figures.votes} votes (95% interval ${percent(figures.winRateInterval[0])} – ${percent(figures.winRateInterval[1])}).</p>` +
        `<p>Tuned ${figures.tuned}, base ${figures.base}, same ${figures.same}; a "same" counts as half a win, and the interval resamples votes. Blind pairs from <code>selfreward review</code>.</p>`;
  return `${HUMAN_REVIEW_START}<h2>Human review</h2>${body}${HUMAN_REVIEW_END}`;
}

/** The report with its human-review section replaced by `section` (added before the end of the page when it has none). */
export function withHumanReviewSection(html: string, section: string): string {
  const start = html.indexOf(HUMAN_REVIEW_START);
  const end = html.indexOf(HUMAN_REVIEW_END, start);
  if (start >= 0 && end >= 0) return html.slice(0, start) + section + html.slice(end + HUMAN_REVIEW_END.length);
  const close = html.lastIndexOf('</body>');
  return close < 0 ? html + section : html.slice(0, close) + section + '\n' + html.slice(close);
}

/** The page; `count` is how many best and worst samples and grid pairs it shows. */
export function reportHtml(data: ReportData, count: number): string {
  const { input, curation, training, evaluation } = data;
  const all = data.scores.flatMap((p) => p.images);
  const ranked = rankedImages(data.scores);
  const card = (r: (typeof ranked)[number]) =>
    `<div class="card">${img(data, r.image.key, r.prompt.text)}<p>${escape(r.prompt.text)}</p><p class="small">class ${escape(r.prompt.className)} · detection ${fixed(r.image.detection)} · checklist ${r.image.checklist} · combined ${fixed(r.image.combined)}${r.image.caption === null ? '' : ` · caption “${escape(r.image.caption)}”`}</p></div>`;
  const classRows = Object.entries(curation.perClass)
    .map(([cls, c]) => {
      const acc = evaluation.perClass[cls];
      const reasons = Object.entries(c.reasons)
        .map(([reason, n]) => `${escape(reason)} (${n})`)
        .join('; ');
      return `<tr><td>${escape(cls)}</td><td>${c.kept}</td><td>${c.dropped}</td><td>${reasons}</td><td>${acc ? percent(acc.base) : '–'}</td><td>${acc ? percent(acc.tuned) : '–'}</td></tr>`;
    })
    .join('');
  const { run, gate } = data;
  const parent = evaluation.parent;
  const parentLine =
    parent === null
      ? ''
      : `<p>Against its parent (the generator this round sampled from, <code>${escape(input.generator.tunedUnet ?? '')}</code>): tuned wins ${percent(parent.winRate)} of ${parent.pairs} pairs (95% interval ${percent(parent.winRateInterval[0])} – ${percent(parent.winRateInterval[1])}); detector accuracy parent ${percent(parent.accuracyBase)}, tuned ${percent(parent.accuracyTuned)}. ${escape(gainAndDiversity(parent, 'parent'))}</p>`;
  const gateSection =
    gate === null
      ? ''
      : `<h2>Promotion gate: ${gate.passed ? 'passed' : 'not passed'}</h2><ul class="gate ${gate.passed ? 'passed' : 'failed'}">${gate.reasons.map((r) => `<li>${escape(r)}</li>`).join('')}</ul>`;
  const runLine = `<p>Workflow <code>${escape(run.workflowId)}</code>, run <code>${escape(run.runId)}</code>${
    run.resetFrom === null ? '' : ` — a reset of run <code>${escape(run.resetFrom)}</code>: the stages after the reset point ran again into this run's keys`
  }.</p>`;
  const datasetSource =
    input.dataset === null
      ? `${curation.kept} images kept, up to ${input.selection.perPrompt} per prompt; ${curation.dropped} prompts dropped (rule “${input.selection.rule}”, detection threshold ${input.judge.threshold})`
      : `${curation.kept} images of the curated dataset <code>${escape(input.dataset)}</code>, trained again with this round's settings`;
  const included = curation.included > 0 && input.dataset === null ? `, ${curation.included} of them from earlier rounds' datasets` : '';
  const grid = spreadPairs(data.evaluationRecords, count)
    .map((p) => pairCard(data, p))
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Self-reward round ${input.round}: ${escape(run.workflowId)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{width:200px}.card img{width:96px;image-rendering:pixelated;margin-right:4px}.pair{width:260px}.pair img{width:128px;margin-right:2px}.small{color:#555;font-size:12px}
svg rect{fill:#4a7}tr.flagged td,p.flagged{background:#fdd}figure{display:inline-block;margin:0 2em 0 0}.headline{font-size:20px}</style></head><body>
<h1>Self-reward round ${input.round}</h1>
${runLine}
<p class="headline">Tuned beats base in <b>${percent(evaluation.winRate)}</b> of ${evaluation.pairs} paired samples (95% interval ${percent(evaluation.winRateInterval[0])} – ${percent(evaluation.winRateInterval[1])}, sign test p = ${evaluation.signTestP.toPrecision(3)}).</p>
<p>Mean CLIP score: base ${fixed(evaluation.meanClipBase, 2)}, tuned ${fixed(evaluation.meanClipTuned, 2)}. Detector class accuracy: base ${percent(evaluation.accuracyBase)}, tuned ${percent(evaluation.accuracyTuned)}. ${escape(gainAndDiversity(evaluation, 'base'))}</p>
${parentLine}${refereeSections(data)}${gateSection}
<p>Dataset: ${datasetSource}${included}. LoRA: ${training.steps} steps, final loss ${training.finalLoss === null ? '–' : fixed(training.finalLoss, 4)}${training.workers === undefined ? '' : `, trained on ${training.workers} GPU worker${training.workers === 1 ? '' : 's'} of the ${input.lora.workers} asked for`}.</p>
${seedsSection(training, curation)}
${humanReviewSection(null)}
<h2>Per class</h2><table><tr><th>class</th><th>images kept</th><th>prompts dropped</th><th>drop reasons</th><th>accuracy base</th><th>accuracy tuned</th></tr>${classRows}</table>
${changesSection(data)}
<h2>Base (left) vs tuned (right), same initial noise, across classes</h2><div class="cards">${grid}</div>
${trainingSection(data)}
<h2>Scores of the sampled images</h2>${histogramSvg(
    all.map((i) => i.detection),
    'detection confidence',
  )}${histogramSvg(
    all.map((i) => i.combined),
    'combined score',
  )}
<h2>Best samples</h2><div class="cards">${ranked.slice(0, count).map(card).join('')}</div>
<h2>Worst samples</h2><div class="cards">${ranked.slice(-count).reverse().map(card).join('')}</div>
<h2>Configuration</h2><pre>${escape(JSON.stringify(input, null, 2))}</pre>
</body></html>
`;
}
