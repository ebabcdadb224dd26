/**
 * `selfRewardNightly`: one night of a model line, what its Schedule starts. It opens the line
 * (reading the champion), runs a round that samples from the champion and trains a challenger
 * on tonight's curated images (and, with `accumulate`, the champion's dataset), evaluates it
 * against the champion and the base, and submits it to the line, which promotes it only when the
 * gate passed and the champion has not moved meanwhile.
 */
import { ApplicationFailure, executeChild, proxyActivities, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';

import { nightRound, validateNightlyInput } from '../config/nightly.js';
import { describeErrors } from '../config/schema.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import type { LineActivities } from '../contract/lines.js';
import type { NightResult } from '../contract/workflows.js';
import { selfRewardRound } from './round.js';

const lines = proxyActivities<LineActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', nonRetryableErrorTypes: ['InvalidInput'] },
});

export async function selfRewardNightly(rawInput: unknown): Promise<NightResult> {
  const checked = validateNightlyInput(rawInput);
  if (!checked.ok) {
    throw ApplicationFailure.create({
      type: 'InvalidInput',
      message: `invalid nightly input: ${describeErrors(checked.errors)}`,
      nonRetryable: true,
      details: [checked.errors],
    });
  }
  const nightly = checked.value;
  const identity = { name: nightly.line, base: nightly.round.generator.base };
  const { workflowId } = workflowInfo();
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.line, value: nightly.line }]);

  const line = await lines.openLine(identity);
  const champion = line.champion;
  const night = line.nights + 1;
  upsertMemo({ line: nightly.line, night, champion: champion.version, championUnet: champion.tunedUnet });

  const round = await executeChild(selfRewardRound, { args: [nightRound(nightly, { night, champion })], workflowId: `${workflowId}-round` });
  // A round with a gate always returns its verdict; against the base on the line's first night.
  const gate = round.gate ?? { passed: false, reasons: ['the round reported no gate verdict'] };
  const decision = await lines.submitChallenger({
    ...identity,
    againstVersion: champion.version,
    challenger: {
      night: workflowId,
      round: round.root,
      lora: round.training.lora,
      dataset: round.dataset.dataset,
      againstChampion: round.evaluation.parent ?? round.evaluation,
      againstBase: round.evaluation,
      gate,
    },
  });
  upsertMemo({
    verdict: decision.verdict,
    reasons: decision.reasons,
    championAfter: decision.championAfter,
    winRateAgainstChampion: (round.evaluation.parent ?? round.evaluation).winRate,
    winRateAgainstBase: round.evaluation.winRate,
    report: round.report.location,
  });
  return { line: nightly.line, night, championBefore: champion.version, decision, round };
}
