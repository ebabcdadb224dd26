/**
 * A campaign: rounds in a row, each sampling from the previous round's tuned generator. Its
 * input schema and the pure rules the campaign workflow follows (what round r runs with, when
 * to stop). Free of Node imports: workflow code uses them.
 */
import { ROUND_SCHEMA, SEED_MAX, type RoundInput } from './round.js';
import { integer, nullable, number, object, validateInput, type Schema, type Validation } from './schema.js';

export interface CampaignInput {
  /** The first round's input; later rounds change only `round`, `generator.tunedUnet` and the sampling seed. */
  readonly round: RoundInput;
  readonly rounds: number;
  /** Stop when a round's win rate is not above the best so far by at least this much. */
  readonly minImprovement: number;
  /** Stop early only after this many rounds. */
  readonly patience: number;
  /**
   * Continue as new after this many rounds in one run (null: only when the server suggests it),
   * so a long campaign's history stays short; the rounds done and a stop request carry over.
   */
  readonly continueAsNewEveryRounds: number | null;
}

export const CAMPAIGN_SCHEMA: Schema<CampaignInput> = object<CampaignInput>(
  {
    round: { ...ROUND_SCHEMA, doc: { ...ROUND_SCHEMA.doc, type: 'round input', meaning: "the first round's input" } },
    rounds: integer({ min: 1, max: 1000, default: 3, meaning: 'rounds at most' }),
    minImprovement: number({ min: 0, max: 1, default: 0, meaning: 'a round must beat the best earlier win rate by more than this' }),
    patience: integer({ min: 1, max: 1000, default: 1, meaning: 'stop after this many rounds in a row without such an improvement' }),
    continueAsNewEveryRounds: nullable(integer({ min: 1, meaning: 'rounds per run' }), {
      meaning: 'continue as new after this many rounds in one run, keeping the rounds done and a stop request (null: only when the server suggests it)',
    }),
  },
  { meaning: 'a campaign of rounds', required: true },
);

export function validateCampaignInput(input: unknown): Validation<CampaignInput> {
  return validateInput(CAMPAIGN_SCHEMA, input);
}

/**
 * Round r of a campaign: samples from round r-1's tuned UNet, with its own sampling seeds so
 * rounds do not redraw the same images.
 */
export function campaignRound(first: RoundInput, round: number, previousTunedUnet: string | null): RoundInput {
  return {
    ...first,
    round,
    generator: { ...first.generator, tunedUnet: previousTunedUnet ?? first.generator.tunedUnet },
    sampling: { ...first.sampling, seed: (first.sampling.seed + (round - first.round) * 1_000_003) % (SEED_MAX + 1) },
  };
}

/**
 * Why a campaign stops after the rounds so far, or null to go on: all rounds done, or the win
 * rate has not beaten the best earlier round by `minImprovement` for `patience` rounds in a row.
 */
export function campaignStopReason(winRates: readonly number[], campaign: Pick<CampaignInput, 'rounds' | 'minImprovement' | 'patience'>): string | null {
  if (winRates.length >= campaign.rounds) return `all ${campaign.rounds} rounds done`;
  let best = -Infinity;
  let stale = 0;
  for (const rate of winRates) {
    if (rate > best + campaign.minImprovement || best === -Infinity) {
      best = Math.max(best, rate);
      stale = 0;
    } else {
      stale += 1;
    }
  }
  return stale >= campaign.patience ? `win rate did not improve on ${best.toFixed(3)} by more than ${campaign.minImprovement} for ${stale} round(s)` : null;
}
