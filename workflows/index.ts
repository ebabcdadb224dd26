/** Every workflow of the plugin; a worker's `workflowsPath` points here. */
export { selfRewardRound, progressQuery, stageProgressSignal, type RoundProgress, type RoundResult } from './round.js';
export { selfRewardCampaign, roundsQuery, stopAfterRoundSignal, type CampaignResult, type RoundFigures } from './campaign.js';
