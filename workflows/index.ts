/** Every workflow of the plugin; a worker's `workflowsPath` points here. */
export { selfRewardRound } from './round.js';
export { selfRewardCampaign } from './campaign.js';
export { selfRewardNightly } from './nightly.js';
export { selfRewardLine } from './line.js';
