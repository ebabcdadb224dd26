import { describe, expect, it } from 'vitest';

import { validateRoundInput, type RoundInput } from './round.js';
import { campaignRound, campaignStopReason, validateCampaignInput } from './campaign.js';
import { describeErrors } from './schema.js';
import { parsePromptLines } from './prompts.js';

const minimal = {
  generator: { base: 'packs/shapes/generator' },
  judge: { detector: 'packs/shapes/detector', clip: 'packs/shapes/clip' },
  prompts: { file: 'packs/shapes/prompts/train.txt' },
  evaluation: { prompts: [{ className: 'circle', text: 'a red circle on a white background' }] },
};

function valid(input: unknown): RoundInput {
  const result = validateRoundInput(input);
  if (!result.ok) throw new Error(describeErrors(result.errors));
  return result.value;
}

describe('validateRoundInput', () => {
  it('fills the defaults of the paper and the proof', () => {
    const round = valid(minimal);
    expect(round.round).toBe(1);
    expect(round.samplesPerPrompt).toBe(8);
    expect(round.sampling).toMatchObject({ steps: 20, guidanceScale: 7.5, negativePrompt: '' });
    expect(round.selection.rule).toBe('paper');
    expect(round.judge).toMatchObject({ detector: 'packs/shapes/detector', captioner: null, threshold: 0.5 });
    expect(round.lora).toMatchObject({
      rank: 4,
      learningRate: 1e-4,
      maxSteps: null,
      mixedPrecision: 'no',
      gradientCheckpointing: false,
      optimizer: 'adamw',
      exportPrecision: 'fp32',
    });
    expect(round.sampling.batchSize).toBeNull();
    expect(round.evaluation).toMatchObject({ seedsPerPrompt: 4, seed: 500_000, guidanceScale: null, scheduler: null });
    expect(round.sampling.scheduler).toBeNull();
    expect(round.selection.perPrompt).toBe(1);
    expect(round.generator.tunedUnet).toBeNull();
    expect(round.activities).toEqual({ heartbeatTimeoutSeconds: 60, maximumAttempts: 5, judgeScheduleToStartSeconds: 30 });
  });

  it("has no referee unless asked, and fills a referee's GenEval defaults, naming its bad fields", () => {
    expect(valid(minimal).evaluation.referee).toBeNull();
    const referee = valid({ ...minimal, evaluation: { ...minimal.evaluation, referee: { detector: 'r', clip: 'c' } } }).evaluation.referee;
    expect(referee).toEqual({
      detector: 'r',
      clip: 'c',
      presenceThreshold: 0.3,
      countThreshold: 0.9,
      iouThreshold: 0.5,
      batchSize: 8,
      synonyms: {},
      colours: ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown', 'black', 'white'],
      backgrounds: [],
    });
    const bad = validateRoundInput({ ...minimal, evaluation: { ...minimal.evaluation, referee: { clip: 'c', presenceThreshold: 2, colours: 'red' } } });
    expect(bad.ok).toBe(false);
    const message = bad.ok ? '' : describeErrors(bad.errors);
    expect(message).toContain('evaluation.referee.detector');
    expect(message).toContain('evaluation.referee.presenceThreshold');
    expect(message).toContain('evaluation.referee.colours');
  });

  it('names every bad field with the expected value', () => {
    const result = validateRoundInput({
      ...minimal,
      samplesPerPrompt: 0,
      sampling: { steps: 2.5, guidanceScale: 'high', scheduler: 'DDPMScheduler', batchSize: 0 },
      judge: { detector: '', clip: 'packs/shapes/clip', threshold: 2 },
      lora: {
        learningRate: 0,
        lrScheduler: 'linear',
        rnak: 8,
        captionDropout: 1,
        mixedPrecision: 'fp8',
        gradientCheckpointing: 'yes',
        optimizer: 'sgd',
        exportPrecision: 'half',
      },
      selection: { rule: 'best', perPrompt: 0 },
      activities: { heartbeatTimeoutSeconds: 5, judgeScheduleToStartSeconds: 0 },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const byField = Object.fromEntries(result.errors.map((e) => [e.field, e.expected]));
    expect(byField).toEqual({
      samplesPerPrompt: 'an integer in [1, 1000]',
      'sampling.steps': 'an integer in [1, 1000]',
      'sampling.guidanceScale': 'a number in [0, 100]',
      'sampling.batchSize': 'null or an integer in [1, 1000]',
      'sampling.scheduler': 'null or one of "DDIMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"',
      'selection.rule': 'one of "paper", "combined"',
      'selection.perPrompt': 'an integer in [1, 1000]',
      'judge.detector': 'a non-empty string',
      'judge.threshold': 'a number in [0, 1]',
      'lora.learningRate': 'a number in (0, 1]',
      'lora.lrScheduler': 'one of "constant", "cosine"',
      'lora.captionDropout': 'a probability in [0, 0.99]',
      'lora.mixedPrecision': 'one of "no", "fp16", "bf16"',
      'lora.gradientCheckpointing': 'true or false',
      'lora.optimizer': 'one of "adamw", "adamw8bit"',
      'lora.exportPrecision': 'one of "fp32", "fp16"',
      'lora.rnak': expect.stringContaining('no such field') as unknown as string,
      'activities.heartbeatTimeoutSeconds': 'an integer in [15, 3600]',
      'activities.judgeScheduleToStartSeconds': 'an integer in [1, 3600]',
    });
    expect(describeErrors(result.errors)).toContain('sampling.steps: expected an integer in [1, 1000], got 2.5');
  });

  it('trains one LoRA unless `lora.seeds` asks for more, and bounds how many', () => {
    expect(valid(minimal).lora).toMatchObject({ seeds: 1, validationShare: 0.2, validationSeed: 700_000 });
    expect(valid({ ...minimal, lora: { seeds: 4, validationShare: 0.25 } }).lora).toMatchObject({ seeds: 4, validationShare: 0.25 });
    const result = validateRoundInput({ ...minimal, lora: { seeds: 17, validationShare: 0 } });
    expect(result.ok).toBe(false);
    const message = result.ok ? '' : describeErrors(result.errors);
    expect(message).toContain('lora.seeds: expected an integer in [1, 16], got 17');
    expect(message).toContain('lora.validationShare: expected a number in (0, 0.9], got 0');
  });

  it('trains each LoRA on one GPU worker unless `lora.workers` asks for more, and bounds how many and how long they wait', () => {
    expect(valid(minimal).lora).toMatchObject({ workers: 1, workersWaitSeconds: 60 });
    expect(valid({ ...minimal, lora: { workers: 8, workersWaitSeconds: 5 } }).lora).toMatchObject({ workers: 8, workersWaitSeconds: 5 });
    const result = validateRoundInput({ ...minimal, lora: { workers: 0, workersWaitSeconds: 0.5 } });
    const message = result.ok ? '' : describeErrors(result.errors);
    expect(message).toContain('lora.workers: expected an integer in [1, 64], got 0');
    expect(message).toContain('lora.workersWaitSeconds: expected a number of seconds in [1, 3600], got 0.5');
  });

  it('refuses several LoRAs for a round that only retrains a dataset: it has no training prompts to validate on', () => {
    const retrain = { ...minimal, prompts: null, dataset: 'runs/x/y/round-001/dataset/' };
    expect(valid(retrain).lora.seeds).toBe(1);
    const result = validateRoundInput({ ...retrain, lora: { seeds: 2 } });
    expect(result.ok ? '' : describeErrors(result.errors)).toContain('lora.seeds: expected 1 when `prompts` is null');
  });

  it('requires the generator, the judge and the held-out prompts', () => {
    const result = validateRoundInput({});
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => e.field)).toEqual(expect.arrayContaining(['generator', 'judge', 'evaluation', 'prompts']));
  });

  it('rejects a non-object input and malformed inline prompts', () => {
    expect(validateRoundInput('round.json')).toMatchObject({ ok: false, errors: [{ field: '(input)', expected: 'an object' }] });
    const result = validateRoundInput({ ...minimal, prompts: [{ className: 'circle' }] });
    expect(result).toMatchObject({ ok: false, errors: [{ field: 'prompts.0' }] });
  });
});

describe('parsePromptLines', () => {
  it('reads `class; prompt` lines, skipping blanks and comments', () => {
    expect(parsePromptLines('# shapes\ncircle; two red circles; on grey\n\nsquare ;a square\n', 'train.txt')).toEqual({
      ok: true,
      value: [
        { className: 'circle', text: 'two red circles; on grey' },
        { className: 'square', text: 'a square' },
      ],
    });
  });

  it('names the file and line of a bad line', () => {
    expect(parsePromptLines('circle; ok\nno class here\n', 'train.txt')).toMatchObject({ ok: false, errors: [{ field: 'train.txt:2' }] });
    expect(parsePromptLines('\n', 'empty.txt')).toMatchObject({ ok: false, errors: [{ field: 'empty.txt' }] });
  });

  it("never repeats a bad line's text, and lists a bounded number of bad lines", () => {
    const secrets = Array.from({ length: 1000 }, (_, i) => `aws_secret_access_key = KEY${i}`).join('\n');
    const result = parsePromptLines(`circle; fine\n${secrets}\n; no class\n__proto__; a prompt\n`, '/home/me/.aws/credentials');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(JSON.stringify(result.errors)).not.toContain('KEY');
    expect(result.errors).toHaveLength(11);
    expect(result.errors[0]).toEqual({
      field: '/home/me/.aws/credentials:2',
      expected: expect.stringContaining('a line `class; prompt`') as unknown as string,
      got: 'a line without ";"',
    });
    expect(result.errors.at(-1)).toEqual({ field: '/home/me/.aws/credentials', expected: 'no more bad lines', got: '992 more' });
  });
});

describe('campaigns', () => {
  it('validates the campaign and its first round', () => {
    const result = validateCampaignInput({ round: minimal, rounds: 0 });
    expect(result).toMatchObject({ ok: false, errors: [{ field: 'rounds', expected: 'an integer in [1, 1000]' }] });
    const nested = validateCampaignInput({ round: { ...minimal, shards: -1 } });
    expect(nested).toMatchObject({ ok: false, errors: [{ field: 'round.shards' }] });
  });

  it('continues as new only when the server suggests it, unless a bound of rounds per run is given', () => {
    expect(validateCampaignInput({ round: minimal })).toMatchObject({ ok: true, value: { continueAsNewEveryRounds: null } });
    expect(validateCampaignInput({ round: minimal, continueAsNewEveryRounds: 2 })).toMatchObject({ ok: true, value: { continueAsNewEveryRounds: 2 } });
    expect(validateCampaignInput({ round: minimal, continueAsNewEveryRounds: 0 })).toMatchObject({
      ok: false,
      errors: [{ field: 'continueAsNewEveryRounds', expected: 'null or an integer >= 1' }],
    });
  });

  it('samples round r from the tuned UNet of round r-1 with fresh seeds', () => {
    const first = valid(minimal);
    const third = campaignRound(first, 3, 'runs/c/round-2/lora');
    expect(third.round).toBe(3);
    expect(third.generator).toEqual({ base: 'packs/shapes/generator', tunedUnet: 'runs/c/round-2/lora' });
    expect(third.sampling.seed).not.toBe(first.sampling.seed);
    expect(third.evaluation).toEqual(first.evaluation);
  });

  it('stops when all rounds are done or the win rate stops improving', () => {
    const settings = { rounds: 5, minImprovement: 0.01, patience: 1 };
    expect(campaignStopReason([0.6], settings)).toBeNull();
    expect(campaignStopReason([0.6, 0.65], settings)).toBeNull();
    expect(campaignStopReason([0.6, 0.65, 0.655], settings)).toMatch(/did not improve on 0.650/);
    expect(campaignStopReason([0.6, 0.5, 0.7], { ...settings, patience: 2 })).toBeNull();
    expect(campaignStopReason([0.6, 0.5, 0.55], { ...settings, patience: 2 })).toMatch(/for 2 round/);
    expect(campaignStopReason([0.6, 0.7], { ...settings, rounds: 2 })).toBe('all 2 rounds done');
  });
});
