/** The judge in lanes against one Judge in this thread, on the shapes pack's models. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RawImage } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ModelInputError, ModelLayoutError } from '../errors.js';
import { validateJudgeConfig, validateRefereeConfig, type JudgeConfig } from './config.js';
import { Judge } from './judge.js';
import { JudgePool, RefereePool } from './judgePool.js';
import { Referee } from './referee.js';

const PACK = join(fileURLToPath(new URL('../..', import.meta.url)), 'packs', 'shapes');

/** A 64x64 image of one colour with a square of another: enough for the models to differ on. */
function square(background: number[], fill: number[], side: number): RawImage {
  const data = new Uint8ClampedArray(64 * 64 * 3);
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) data.set(Math.abs(x - 32) < side && Math.abs(y - 32) < side ? fill : background, (y * 64 + x) * 3);
  }
  return new RawImage(data, 64, 64, 3);
}

describe('JudgePool', () => {
  let config: JudgeConfig;
  let pool: JudgePool;

  beforeAll(async () => {
    config = validateJudgeConfig({
      detector: join(PACK, 'detector'),
      captioner: join(PACK, 'captioner'),
      clip: join(PACK, 'clip'),
      batchSize: 2,
      threshold: 0,
      threads: 1,
    });
    pool = await JudgePool.load({ ...config, threads: 2 }, { lanes: 2 });
  });

  afterAll(async () => {
    await pool?.release();
  });

  it('gives the verdict one Judge gives, each image judged in its lane', async () => {
    const images = [square([250, 250, 250], [220, 30, 30], 12), square([250, 250, 250], [30, 30, 220], 20), square([20, 20, 20], [30, 200, 30], 6)];
    const prompt = 'a red square on a white background';
    const pooled = await pool.judge(prompt, 'square', images);
    const single = await (await Judge.load(config)).judge(prompt, 'square', images);
    expect(pool.laneCount).toBe(2);
    expect(pooled.selected).toBe(single.selected);
    expect(pooled.judgements).toHaveLength(3);
    pooled.judgements.forEach((j, i) => {
      const want = single.judgements[i]!;
      expect(j.detection.confidence).toBeCloseTo(want.detection.confidence, 5);
      expect(j.detection.instances).toBe(want.detection.instances);
      expect(j.caption?.caption).toBe(want.caption?.caption);
      expect(j.clip?.cosine).toBeCloseTo(want.clip!.cosine, 5);
      expect(j.combined).toBeCloseTo(want.combined, 5);
    });
  });

  it("refuses bad input and bad folders with the judge's own errors, naming them", async () => {
    const images = [square([0, 0, 0], [255, 255, 255], 10), square([0, 0, 0], [255, 255, 255], 20)];
    await expect(pool.judge(' ', 'square', images)).rejects.toThrow(ModelInputError);
    const load = JudgePool.load({ ...config, detector: join(PACK, 'captioner') }, { lanes: 2 });
    await expect(load).rejects.toThrow(ModelLayoutError);
    await expect(load).rejects.toThrow(/captioner\/config.json: model_type "vision-encoder-decoder" is not a supported detector/);
  });
});

describe('RefereePool', () => {
  it('gives the verdicts one Referee gives, each image graded in its lane', async () => {
    const config = validateRefereeConfig({ detector: join(PACK, 'detector'), clip: join(PACK, 'clip'), device: 'cpu', threads: 1, batchSize: 2 });
    const pool = await RefereePool.load({ ...config, threads: 2 }, { lanes: 2 });
    try {
      const images = [square([250, 250, 250], [220, 30, 30], 12), square([20, 20, 20], [30, 30, 220], 20), square([250, 250, 250], [30, 200, 30], 6)];
      const prompt = 'a red square on a white background';
      const pooled = await pool.grade(prompt, 'square', images);
      const single = await (await Referee.load(config)).grade(prompt, 'square', images);
      expect(pool.laneCount).toBe(2);
      expect(pooled).toEqual(single);
      await expect(pool.grade(' ', 'square', images)).rejects.toThrow(ModelInputError);
    } finally {
      await pool.release();
    }
  });
});
