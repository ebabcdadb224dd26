/** `selfRewardCampaign`: rounds as child workflows, each sampling from the previous round's tuned generator. */
import { allHandlersFinished, ApplicationFailure, condition, continueAsNew, executeChild, setHandler, upsertMemo, workflowInfo } from '@temporalio/workflow';

import { campaignRound, campaignStopReason, validateCampaignInput, type CampaignInput } from '../config/campaign.js';
import { describeErrors } from '../config/schema.js';
import { roundsQuery, stopAfterRoundSignal, type CampaignCarry, type CampaignResult, type RoundFigures } from '../contract/workflows.js';
import { selfRewardRound } from './round.js';

export async function selfRewardCampaign(rawInput: unknown, carry: CampaignCarry = { rounds: [], stopRequested: false }): Promise<CampaignResult> {
  const checked = validateCampaignInput(rawInput);
  if (!checked.ok) {
    throw ApplicationFailure.create({
      type: 'InvalidInput',
      message: `invalid campaign input: ${describeErrors(checked.errors)}`,
      nonRetryable: true,
      details: [checked.errors],
    });
  }
  const campaign: CampaignInput = checked.value;
  const rounds: RoundFigures[] = [...carry.rounds];
  let stopRequested = carry.stopRequested;
  setHandler(roundsQuery, () => rounds);
  setHandler(stopAfterRoundSignal, () => {
    stopRequested = true;
  });

  const { workflowId } = workflowInfo();
  for (;;) {
    const stopReason = stopRequested
      ? 'stop requested'
      : campaignStopReason(
          rounds.map((r) => r.winRate),
          campaign,
        );
    if (stopReason !== null) {
      await condition(allHandlersFinished);
      return { rounds, stopReason };
    }
    // The server suggests it when the history grows large; the input's own bound keeps every
    // run short for users who would rather not let one run approach that size at all.
    const roundsThisRun = rounds.length - carry.rounds.length;
    const everyRounds = campaign.continueAsNewEveryRounds;
    if (workflowInfo().continueAsNewSuggested || (everyRounds !== null && roundsThisRun >= everyRounds)) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof selfRewardCampaign>(rawInput, { rounds, stopRequested });
    }
    const number = campaign.round.round + rounds.length;
    const previous = rounds.at(-1)?.lora ?? null;
    const childId = `${workflowId}-round-${number}`;
    const result = await executeChild(selfRewardRound, { args: [campaignRound(campaign.round, number, previous)], workflowId: childId });
    rounds.push({
      round: number,
      workflowId: childId,
      winRate: result.evaluation.winRate,
      winRateInterval: result.evaluation.winRateInterval,
      meanClipTuned: result.evaluation.meanClipTuned,
      accuracyTuned: result.evaluation.accuracyTuned,
      kept: result.dataset.kept,
      lora: result.training.lora,
      report: result.report.location,
    });
    upsertMemo({ rounds: rounds.length, winRates: rounds.map((r) => r.winRate) });
  }
}
