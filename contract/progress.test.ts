import { describe, expect, it } from 'vitest';

import { withLiveProgress, type RoundProgress } from './progress.js';

const settled: RoundProgress = {
  round: 2,
  stage: 'sample',
  shards: { total: 3, sampled: 1, judged: 0 },
  images: { sampled: 16, judged: 0 },
  perClass: {},
  trainer: null,
  evaluated: 0,
  winRate: null,
  report: null,
};

describe('withLiveProgress', () => {
  it("adds the running shards' images to the finished shards' ones", () => {
    const live = withLiveProgress(settled, [
      { stage: 'sample', shard: 1, sampled: 5 },
      { stage: 'sample', shard: 2, sampled: 3 },
    ]);
    expect(live.images).toEqual({ sampled: 24, judged: 0 });
    expect(live.shards).toEqual(settled.shards);
  });

  it("takes the trainer's step and the held-out images drawn from their running activities", () => {
    const training = withLiveProgress({ ...settled, stage: 'train' }, [{ stage: 'train', trainerStep: 40, trainerSteps: 200, loss: 0.12 }]);
    expect(training.trainer).toEqual({ step: 40, steps: 200, loss: 0.12 });
    const evaluating = withLiveProgress({ ...settled, stage: 'evaluate', trainer: { step: 200, steps: 200, loss: 0.1 } }, [
      { stage: 'evaluate', evaluated: 12 },
    ]);
    expect(evaluating).toMatchObject({ evaluated: 12, trainer: { step: 200, steps: 200, loss: 0.1 } });
  });

  it("adds the running evaluation shards' held-out images to those of the shards that are done", () => {
    const evaluating = withLiveProgress({ ...settled, stage: 'evaluate', evaluated: 20 }, [
      { stage: 'evaluate', shard: 1, evaluated: 12 },
      { stage: 'evaluate', shard: 2, evaluated: 8 },
    ]);
    expect(evaluating.evaluated).toBe(40);
  });

  it('adds up the validation images the running validations of several LoRAs have drawn', () => {
    const loras = { total: 3, trained: 2, validated: 0, kept: null };
    const validating = withLiveProgress({ ...settled, stage: 'train', loras }, [
      { stage: 'validate', evaluated: 40 },
      { stage: 'validate', evaluated: 8 },
      { stage: 'train', trainerStep: 10, trainerSteps: 900 },
    ]);
    expect(validating.loras).toEqual({ ...loras, validating: 48 });
    expect(withLiveProgress({ ...settled, loras }, [{ stage: 'validate' }]).loras).toEqual(loras);
  });

  it('keeps the settled figures when nothing runs, or a running activity has said nothing yet', () => {
    expect(withLiveProgress(settled, [])).toEqual(settled);
    expect(withLiveProgress({ ...settled, stage: 'train' }, [{ stage: 'train' }])).toEqual({ ...settled, stage: 'train' });
  });
});
