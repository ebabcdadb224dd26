/**
 * The report's section on a round of several LoRAs (`lora.seeds` > 1): each one's validation
 * figures on the withheld training prompts, which one the round kept, and the spread of their
 * accuracy gains, which says how much the trainer's seed alone moves a round's result. Pure.
 */
import type { CurateResult, TrainResult } from '../contract/activities.js';
import { escapeHtml as escape } from './html.js';

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
const points = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;

/** The section, or nothing for a round of one LoRA. */
export function seedsSection(training: TrainResult, curation: CurateResult): string {
  const seeds = training.seeds;
  if (seeds === undefined) return '';
  const rows = seeds.perSeed
    .map(
      (s) =>
        `<tr${s.kept ? ' class="kept"' : ''}><td>${s.seed}</td><td>${percent(s.accuracy)}</td><td>${points(s.accuracyGain)}</td><td>${percent(s.winRate)}</td><td>${s.finalLoss === null ? '–' : s.finalLoss.toFixed(4)}</td><td>${s.kept ? '<b>kept</b>' : ''}</td><td><code>${escape(s.lora)}</code></td></tr>`,
    )
    .join('');
  const gain = seeds.accuracyGain;
  // A round that retrains a dataset curated with the same split finds nothing more to leave out.
  const withheld =
    curation.withheld === undefined || curation.withheld.images === 0 ? '' : ` (${curation.withheld.images} of their images left out of the dataset)`;
  const base = seeds.perSeed[0]?.accuracyBase;
  return `<h2>LoRAs by trainer seed</h2>
<p>${seeds.perSeed.length} LoRAs were trained side by side from the same dataset, one per trainer seed, and compared on ${seeds.validationPrompts} training prompts withheld from their training${escape(withheld)}, ${seeds.validationPairs} images per side with fresh seeds, scored by the curation judge${base === undefined ? '' : ` (base accuracy ${percent(base)})`}. The round kept the LoRA of trainer seed <b>${seeds.kept}</b> (highest validation accuracy, then win rate against the base, then lowest seed); only it was evaluated on the held-out prompts above.</p>
<table class="seeds"><tr><th>trainer seed</th><th>validation accuracy</th><th>gain (points)</th><th>win rate vs base</th><th>final loss</th><th></th><th>LoRA</th></tr>${rows}</table>
<p>Validation accuracy gain across the seeds: min ${points(gain.min)}, max ${points(gain.max)}, mean ${points(gain.mean)}, standard deviation ${(100 * gain.sd).toFixed(1)} points.</p>`;
}
