export { validateJudgeConfig, DEFAULT_WEIGHTS, DEFAULT_ATTRIBUTES, type JudgeConfig, type Weights } from './config.js';
export { Judge, type Judgement, type Verdict } from './judge.js';
export { DETECTORS } from './detector.js';
export { decodeImage } from './image.js';
export { rank, select, combinedScore, checklist, clipScore100, clipScoreHessel, type Detection, type CaptionCheck } from './scores.js';
export type { Box } from './boxes.js';
