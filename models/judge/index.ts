export {
  validateJudgeConfig,
  validateRefereeConfig,
  DEFAULT_WEIGHTS,
  DEFAULT_ATTRIBUTES,
  GENEVAL_COLOURS,
  type JudgeConfig,
  type RefereeConfig,
  type Weights,
} from './config.js';
export { Judge, type Judgement, type Verdict } from './judge.js';
export { DETECTORS } from './detector.js';
export { decodeImage } from './image.js';
export { rank, select, combinedScore, checklist, clipScore100, clipScoreHessel, type Detection, type CaptionCheck } from './scores.js';
export type { Box } from './boxes.js';
export { Referee, REFEREE_DETECTOR_FIELD } from './referee.js';
export { promptAttributes, refereeVerdict, type RefereeVerdict, type PromptAttributes } from './refereeChecks.js';
