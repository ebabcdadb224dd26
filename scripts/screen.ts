/**
 * Screens loop settings with the product, on a validation split of the training prompts, never
 * on the held-out prompts a round reports on: each variant (a round-input override in JSON, such
 * as '{"lora":{"maxSteps":1200}}'; none: the configuration as it is) runs as one round with
 * `lora.seeds` LoRAs, and its figures are those LoRAs' validation figures (`training.seeds`): the
 * withheld prompts' class accuracy gain over the base and win rate, per trainer seed and their
 * spread, since one seed's gain moves by a few points on its own. One JSON line per variant, then
 * a table. Needs a running stack and worker (`scripts/screen.sh` starts them).
 *
 *   tsx scripts/screen.ts [FILE] [--preset shapes] [--seeds 3] [--variant JSON]...
 */
import { parseArgs } from 'node:util';

import { loadRoundConfig, mergeConfig, parseConfigText } from '../cli/config.js';
import { SelfRewardClient } from '../client/index.js';
import { PACKAGE_ROOT } from '../config/paths.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    preset: { type: 'string' },
    seeds: { type: 'string', default: '3' },
    variant: { type: 'string', multiple: true, default: [] },
  },
});

const seeds = Number(values.seeds);
if (!Number.isInteger(seeds) || seeds < 2)
  throw new Error(`--seeds: expected an integer of at least 2 (the spread needs several trainer seeds), got ${values.seeds}`);
const variants = values.variant.length > 0 ? values.variant : ['{}'];
const percent = (x: number) => `${(100 * x).toFixed(1)}`;

const selfReward = await SelfRewardClient.connect();
const rows: string[] = [];
for (const [n, text] of variants.entries()) {
  const variant = parseConfigText(text, `--variant ${n + 1}`);
  const input = loadRoundConfig({ file: positionals[0], preset: values.preset, root: PACKAGE_ROOT, override: mergeConfig(variant, { lora: { seeds } }) });
  const round = await selfReward.startRound(input);
  const result = await round.result();
  const figures = result.training.seeds;
  if (figures === undefined) throw new Error(`round ${round.workflowId} reports no validation figures`);
  console.log(JSON.stringify({ variant, workflowId: round.workflowId, ...figures }));
  const wins = figures.perSeed.map((s) => percent(s.winRate)).join(', ');
  const { mean, sd, min, max } = figures.accuracyGain;
  rows.push(`| ${text} | ${percent(mean)} ± ${percent(sd)} [${percent(min)}, ${percent(max)}] | ${wins} | ${figures.validationPrompts} |`);
}
console.log(
  ['', '| variant | validation accuracy gain, mean ± sd [min, max] (points) | win rate per seed (%) | validation prompts |', '|---|---|---|---|', ...rows].join(
    '\n',
  ),
);
