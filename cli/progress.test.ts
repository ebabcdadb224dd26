import { describe, expect, it } from 'vitest';

import { accuracyGainText, bar, campaignLine, countingText, diversityText, progressLine, refereeText } from './progress.js';
import type { RoundProgress } from '../contract/progress.js';

const base: RoundProgress = {
  round: 2,
  stage: 'sample',
  shards: { total: 4, sampled: 1, judged: 0 },
  images: { sampled: 40, judged: 0 },
  perClass: {},
  trainer: null,
  evaluated: 0,
  winRate: null,
  report: null,
};

describe('progress lines', () => {
  it('draws a bar of the done fraction, clamped', () => {
    expect(bar(0.5, 10)).toBe('[#####.....]');
    expect(bar(2, 4)).toBe('[####]');
    expect(bar(-1, 4)).toBe('[....]');
  });

  it('shows what each stage is doing', () => {
    expect(progressLine(base)).toBe('round 2 sample   [#####...............] shards 1/4, 40 images');
    expect(progressLine({ ...base, stage: 'judge', images: { sampled: 40, judged: 10 } })).toContain('10/40 images judged');
    expect(progressLine({ ...base, stage: 'train', trainer: { step: 3, steps: 12, loss: 0.12345 } })).toContain('step 3/12, loss 0.1235');
    expect(progressLine({ ...base, stage: 'train' })).toContain('starting the trainer');
    expect(progressLine({ ...base, stage: 'validate', loras: { total: 3, trained: 3, validated: 1, kept: null } })).toBe(
      'round 2 validate [#######.............] 1/3 LoRAs validated on the withheld training prompts',
    );
    expect(progressLine({ ...base, stage: 'validate', loras: { total: 3, trained: 3, validated: 1, kept: null, validating: 48 } })).toBe(
      'round 2 validate [#######.............] 1/3 LoRAs validated on the withheld training prompts, 48 images drawn',
    );
    // Rounds keep up to selection.perPrompt images a prompt, not always one.
    expect(progressLine({ ...base, stage: 'curate', images: { sampled: 40, judged: 40 } })).toBe(
      "round 2 curate   keeping each prompt's best images of 40 judged",
    );
    expect(progressLine({ ...base, stage: 'done', winRate: 0.625 })).toContain('win rate 62.5%');
  });

  it('sums up a campaign', () => {
    expect(campaignLine([])).toBe('campaign: first round running');
  });
});

describe('evaluation figures in the result', () => {
  const comparison = {
    pairs: 8,
    winRate: 0.625,
    winRateInterval: [0.5, 0.75] as const,
    meanClipBase: 25,
    meanClipTuned: 26,
    signTestP: 0.3,
    accuracyBase: 0.5,
    accuracyTuned: 0.625,
    perClass: {},
  };

  it('gives the accuracy gain in points with its interval, and diversity with its change', () => {
    const c = { ...comparison, accuracyGainInterval: [-0.125, 0.375] as const, diversityBase: 0.3, diversityTuned: 0.27, diversityChange: 0.27 / 0.3 - 1 };
    expect(accuracyGainText(c)).toBe('+12.5 points (95% interval -12.5 to +37.5)');
    expect(diversityText(c)).toBe('diversity 0.3000 -> 0.2700 (-10.0%)');
  });

  it('reads results of earlier versions, which have neither, and says why diversity is missing', () => {
    expect(accuracyGainText(comparison)).toBe('+12.5 points');
    expect(diversityText(comparison)).toBe('diversity not measured (it needs two or more held-out seeds per prompt)');
    expect(diversityText({ ...comparison, diversityBase: null, diversityTuned: null, diversityChange: null })).toMatch(/not measured/);
  });

  it('gives counting accuracy base to tuned with the gain in points and its interval, or why it is missing', () => {
    const c = { ...comparison, countAccuracyBase: 0.25, countAccuracyTuned: 0.5, countGainInterval: [0, 0.5] as const };
    expect(countingText(c)).toBe('counting accuracy 25.0% -> 50.0%, gain +25.0 points (95% interval +0.0 to +50.0)');
    expect(countingText(comparison)).toMatch(/^counting not measured/);
    expect(countingText({ ...comparison, countAccuracyBase: null, countAccuracyTuned: null, countGainInterval: null })).toMatch(/^counting not measured/);
  });

  it("gives the referee's headline and the flagged classes, and nothing without a referee", () => {
    const share = (base: number, tuned: number) => ({ n: 8, base, tuned, gain: tuned - base, gainInterval: [0, 0.5] as const });
    const referee = {
      objectPresent: share(0.5, 0.75),
      counting: null,
      colour: null,
      background: null,
      allCorrectImages: share(0.25, 0.5),
      allCorrectPrompts: share(0.25, 0.5),
      judgeAccepted: share(0.5, 1),
      hacking: {},
      flaggedClasses: ['circle', 'star'],
    };
    expect(refereeText({ ...comparison, referee })).toBe(
      'referee: all correct per prompt 25.0% -> 50.0% (gain 95% interval +0.0 to +50.0); object present 50.0% -> 75.0% (gain 95% interval +0.0 to +50.0); FLAGGED (judge accepts, referee rejects, more than before): circle, star',
    );
    expect(refereeText({ ...comparison, referee: { ...referee, flaggedClasses: [] } })).toMatch(/; no class flagged$/);
    expect(refereeText(comparison)).toBeNull();
    expect(refereeText({ ...comparison, referee: null })).toBeNull();
  });
});
