import { describe, expect, it } from 'vitest';

import { gateVerdict } from './gate.js';
import { nightRound, validateNightlyInput, type NightlyInput } from './nightly.js';
import { validateRoundInput } from './round.js';
import { describeErrors } from './schema.js';

const round = {
  generator: { base: '/models/sd' },
  judge: { detector: '/models/owl', clip: '/models/clip' },
  prompts: { file: '/prompts/train.txt' },
  evaluation: { prompts: { file: '/prompts/eval.txt' } },
};

function nightly(input: unknown): NightlyInput {
  const checked = validateNightlyInput(input);
  if (!checked.ok) throw new Error(describeErrors(checked.errors));
  return checked.value;
}

describe('nightly input', () => {
  it('fills the gate and accumulation defaults', () => {
    expect(nightly({ line: 'shapes', round })).toMatchObject({ line: 'shapes', gate: { minWinRateLow: 0.5, maxAccuracyDrop: 0 }, accumulate: true });
  });

  it('refuses a line name that is not a plain key, and a round that names its own tuned UNet', () => {
    const checked = validateNightlyInput({ line: '../other', round });
    expect(checked.ok ? [] : checked.errors.map((e) => e.field)).toEqual(['line']);
    const tuned = validateNightlyInput({ line: 'shapes', round: { ...round, generator: { base: '/models/sd', tunedUnet: 'runs/x/lora/' } } });
    expect(tuned.ok ? [] : tuned.errors).toEqual([
      { field: 'round.generator.tunedUnet', expected: "null (a night samples from its line's champion)", got: '"runs/x/lora/"' },
    ]);
  });
});

describe("a night's round", () => {
  const input = nightly({ line: 'shapes', round: { ...round, includeDatasets: ['runs/extra/dataset/'] } });

  it("samples from the champion with the night's own seeds, gated, and trains on the champion's dataset too", () => {
    const third = nightRound(input, { night: 3, champion: { tunedUnet: 'runs/n2/lora/', dataset: 'runs/n2/dataset/' } });
    expect(third).toMatchObject({
      round: 3,
      generator: { base: '/models/sd', tunedUnet: 'runs/n2/lora/' },
      includeDatasets: ['runs/extra/dataset/', 'runs/n2/dataset/'],
      gate: { minWinRateLow: 0.5, maxAccuracyDrop: 0 },
    });
    const first = nightRound(input, { night: 1, champion: { tunedUnet: null, dataset: null } });
    expect(first.generator.tunedUnet).toBeNull();
    expect(first.includeDatasets).toEqual(['runs/extra/dataset/']);
    expect(first.sampling.seed).toBe(input.round.sampling.seed);
    expect(third.sampling.seed).not.toBe(first.sampling.seed);
    expect(nightRound({ ...input, accumulate: false }, { night: 2, champion: { tunedUnet: 'l/', dataset: 'd/' } }).includeDatasets).toEqual([
      'runs/extra/dataset/',
    ]);
  });
});

describe('the gate', () => {
  const diversity = { diversityBase: 0.4, diversityTuned: 0.38, diversityChange: 0.38 / 0.4 - 1 };
  const figures = { pairs: 100, winRate: 0.6, winRateInterval: [0.52, 0.68] as const, accuracyBase: 0.5, accuracyTuned: 0.55, ...diversity, referee: null };
  const gate = { minWinRateLow: 0.5, maxAccuracyDrop: 0, maxDiversityLoss: null, maxRefereeDrop: null, refuseHacking: false };

  it('passes only when the interval starts above the bound and accuracy holds, giving a reason per rule', () => {
    const pass = gateVerdict(gate, figures, 'the champion');
    expect(pass.passed).toBe(true);
    expect(pass.reasons).toEqual([
      'win rate against the champion 60.0% [52.0%, 68.0%] over 100 pairs: its interval starts above 50.0%',
      "detector accuracy 55.0% against the champion's 50.0%: within the allowed drop of 0.0%",
    ]);
    expect(gateVerdict({ ...gate, minWinRateLow: 0.55 }, figures, 'the champion').passed).toBe(false);
    const worse = gateVerdict({ ...gate, maxAccuracyDrop: 0.02 }, { ...figures, accuracyTuned: 0.45 }, 'the champion');
    expect(worse.passed).toBe(false);
    expect(worse.reasons[1]).toBe("detector accuracy 45.0% against the champion's 50.0%: a drop of 5.0%, more than the allowed 2.0%");
  });

  it('bounds the loss of diversity when asked to: a 5% loss passes a 5% bound and fails a 4% one', () => {
    // 0.38 against 0.4 is a loss of exactly 5%, which floating point puts a hair above 0.05.
    const within = gateVerdict({ ...gate, maxDiversityLoss: 0.05 }, figures, 'the champion');
    expect(within.passed).toBe(true);
    expect(within.reasons).toHaveLength(3);
    expect(within.reasons[2]).toBe("diversity 0.4000 -> 0.3800 against the champion's: a loss of 5.0%, within the allowed 5.0%");
    const beyond = gateVerdict({ ...gate, maxDiversityLoss: 0.04 }, figures, 'the champion');
    expect(beyond.passed).toBe(false);
    expect(beyond.reasons[2]).toBe("diversity 0.4000 -> 0.3800 against the champion's: a loss of 5.0%, more than the allowed 4.0%");
    const more = { ...figures, diversityTuned: 0.5, diversityChange: 0.25 };
    expect(gateVerdict({ ...gate, maxDiversityLoss: 0 }, more, 'the champion').reasons[2]).toBe(
      "diversity 0.4000 -> 0.5000 against the champion's: no loss (25.0%)",
    );
  });

  it('does not pass a diversity bound it cannot check, and without a bound neither reads nor reports diversity', () => {
    const unmeasured = { ...figures, diversityBase: null, diversityTuned: null, diversityChange: null };
    const verdict = gateVerdict({ ...gate, maxDiversityLoss: 0.05 }, unmeasured, 'the champion');
    expect(verdict.passed).toBe(false);
    expect(verdict.reasons[2]).toMatch(/^diversity against the champion: not measured/);
    const unbounded = gateVerdict(gate, unmeasured, 'the champion');
    expect(unbounded.passed).toBe(true);
    expect(unbounded.reasons).toHaveLength(2);
  });

  it("bounds the referee's object-present drop and refuses a flagged class when asked to, and passes neither rule unmeasured", () => {
    const refereed = { ...figures, referee: { objectPresent: { base: 0.65, tuned: 0.62 }, flaggedClasses: [] } };
    const drop = gateVerdict({ ...gate, maxRefereeDrop: 0.02 }, refereed, 'the champion');
    expect(drop.passed).toBe(false);
    expect(drop.reasons[2]).toBe("referee object present 62.0% against the champion's 65.0%: a drop of 3.0%, more than the allowed 2.0%");
    expect(gateVerdict({ ...gate, maxRefereeDrop: 0.03 }, refereed, 'the champion').passed).toBe(true);
    const clean = gateVerdict({ ...gate, refuseHacking: true }, refereed, 'the champion');
    expect(clean.passed).toBe(true);
    expect(clean.reasons[2]).toBe('hacking check against the champion: no class flagged');
    const hacked = gateVerdict(
      { ...gate, refuseHacking: true },
      { ...refereed, referee: { ...refereed.referee, flaggedClasses: ['cross', 'star'] } },
      'the champion',
    );
    expect(hacked.passed).toBe(false);
    expect(hacked.reasons[2]).toMatch(/^hacking check against the champion flags cross, star:/);
    const both = gateVerdict({ ...gate, maxRefereeDrop: 0.05, refuseHacking: true }, figures, 'the champion');
    expect(both.passed).toBe(false);
    expect(both.reasons.slice(2)).toEqual([
      'referee against the champion: not measured (it needs `evaluation.referee`), so its bound cannot hold',
      'hacking check against the champion: not measured (it needs `evaluation.referee`), so it cannot pass',
    ]);
  });

  it("refuses the referee's rules in an input without a referee, naming the field", () => {
    expect(() => nightly({ line: 'a', round, gate: { refuseHacking: true } })).toThrow(/gate\.refuseHacking.*evaluation\.referee/);
    expect(() => nightly({ line: 'a', round, gate: { maxRefereeDrop: 0 } })).toThrow(/gate\.maxRefereeDrop.*evaluation\.referee/);
    const refereed = { ...round, evaluation: { ...round.evaluation, referee: { detector: '/models/detr', clip: '/models/clip' } } };
    expect(nightly({ line: 'a', round: refereed, gate: { refuseHacking: true, maxRefereeDrop: 0 } }).gate).toMatchObject({
      refuseHacking: true,
      maxRefereeDrop: 0,
    });
  });

  it('reads the bound from the input, null by default, and refuses one that one seed per prompt cannot check', () => {
    expect(nightly({ line: 'a', round }).gate.maxDiversityLoss).toBeNull();
    expect(nightly({ line: 'a', round, gate: { maxDiversityLoss: 0.05 } }).gate.maxDiversityLoss).toBe(0.05);
    expect(() => nightly({ line: 'a', round, gate: { maxDiversityLoss: 1.5 } })).toThrow(/gate\.maxDiversityLoss.*\[0, 1\]/);
    const oneSeed = { ...round, evaluation: { ...round.evaluation, seedsPerPrompt: 1 } };
    expect(() => nightly({ line: 'a', round: oneSeed, gate: { maxDiversityLoss: 0.05 } })).toThrow(/gate\.maxDiversityLoss.*seedsPerPrompt/);
    expect(nightly({ line: 'a', round: oneSeed }).gate.maxDiversityLoss).toBeNull();
    const checked = validateRoundInput({ ...oneSeed, gate: { maxDiversityLoss: 0.05 } });
    expect(checked.ok).toBe(false);
    expect(checked.ok ? '' : describeErrors(checked.errors)).toMatch(/gate\.maxDiversityLoss.*seedsPerPrompt/);
  });
});
