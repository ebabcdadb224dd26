/**
 * The judge end to end on the shapes pack, and its answers to bad input. The detector is the
 * pack's (or JUDGE_PARITY_DETECTOR's); the tests that need one skip until it is built.
 */
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RawImage } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageDecodeError, ModelInputError, ModelLayoutError, UnknownClassError } from '../errors.js';
import { validateJudgeConfig } from './config.js';
import { Judge } from './judge.js';
import { loadCaptioner } from './captioner.js';
import { loadClip } from './clip.js';
import { loadDetector } from './detector.js';
import { decodeImage } from './image.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACK = join(ROOT, 'packs', 'shapes');
const DETECTOR = process.env['JUDGE_PARITY_DETECTOR'] ?? join(PACK, 'detector');
const HAS_DETECTOR = existsSync(join(DETECTOR, 'config.json'));
const source = (folder: string) => ({ folder, device: 'cpu' as const, allowRemoteModels: false, threads: 1 });

/** A flat 64x64 image: enough to run the models, whatever they make of it. */
function flat(r: number, g: number, b: number): RawImage {
  const data = new Uint8ClampedArray(64 * 64 * 3);
  for (let i = 0; i < data.length; i += 3) data.set([r, g, b], i);
  return new RawImage(data, 64, 64, 3);
}

describe('bad input', () => {
  let scratch = '';
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'judge-input-'));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('names a missing folder', async () => {
    await expect(loadCaptioner(source(join(scratch, 'nowhere')))).rejects.toThrow(/nowhere does not exist; expected a folder in the transformers.js layout/);
  });

  it('names a missing config.json', async () => {
    await expect(loadClip(source(scratch))).rejects.toThrow(/config.json is missing; expected the model's config.json/);
  });

  it('names a missing model file', async () => {
    const folder = join(scratch, 'clip');
    await cp(join(PACK, 'clip'), folder, { recursive: true });
    await rm(join(folder, 'onnx', 'text_model.onnx'));
    await expect(loadClip(source(folder))).rejects.toThrow(/onnx\/text_model.onnx is missing; a CLIP folder needs/);
  });

  it('refuses a detector of an unsupported model type', async () => {
    // The captioner is a valid folder but not a detector.
    const load = loadDetector(source(join(PACK, 'captioner')));
    await expect(load).rejects.toThrow(ModelLayoutError);
    await expect(load).rejects.toThrow(/captioner\/config.json: model_type "vision-encoder-decoder" is not a supported detector; expected one of owlvit/);
  });

  it('refuses a closed-vocabulary detector without id2label', async () => {
    const folder = join(scratch, 'detr');
    await cp(join(PACK, 'clip'), folder, { recursive: true });
    await writeFile(join(folder, 'config.json'), JSON.stringify({ model_type: 'detr' }));
    await expect(loadDetector(source(folder))).rejects.toThrow(/has no id2label/);
  });

  it('keeps a bad folder a layout error on a CUDA device too', async () => {
    // The id2label check runs inside the device guard, which must not report it as a provider failure.
    const folder = join(scratch, 'detr-cuda');
    await cp(join(PACK, 'clip'), folder, { recursive: true });
    await writeFile(join(folder, 'config.json'), JSON.stringify({ model_type: 'detr' }));
    await expect(loadDetector({ folder, device: 'cuda:0', allowRemoteModels: false, threads: null })).rejects.toThrow(ModelLayoutError);
  });

  it('refuses a class that is not a label of a closed-vocabulary detector', async () => {
    // A DETR-style folder (the pack detector's files under a detr config): the label check comes before any inference.
    const folder = join(scratch, 'closed');
    await cp(join(PACK, 'detector'), folder, { recursive: true });
    await writeFile(join(folder, 'config.json'), JSON.stringify({ model_type: 'detr', id2label: { 0: 'circle', 1: 'square' } }));
    const detector = await loadDetector(source(folder));
    const asked = detector.candidates([flat(0, 0, 0)], 'star', ['pentagram']);
    await expect(asked).rejects.toThrow(UnknownClassError);
    await expect(asked).rejects.toThrow(
      /class "star" is not a label of the detector in .*closed \(config.json id2label: circle, square\); add a synonym that is/,
    );
  });

  it('names an image that does not decode', async () => {
    const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4]);
    const decoded = decodeImage(bytes, 'sample-07.png');
    await expect(decoded).rejects.toThrow(ImageDecodeError);
    await expect(decoded).rejects.toThrow(/^image sample-07.png does not decode \(8 bytes\); expected an encoded PNG, JPEG or WebP image$/);
  });

  it.skipIf(!HAS_DETECTOR)('refuses an empty prompt or class', async () => {
    const judge = await Judge.load(validateJudgeConfig({ detector: DETECTOR }));
    for (const [prompt, className, message] of [
      [' ', 'star', /prompt must be a non-empty string/],
      ['a star', '', /className must be a non-empty string/],
    ] as const) {
      const judged = judge.judge(prompt, className, [flat(0, 0, 0)]);
      await expect(judged).rejects.toThrow(ModelInputError);
      await expect(judged).rejects.toThrow(message);
    }
  });
});

describe.skipIf(!HAS_DETECTOR)(`judge on the shapes pack (${HAS_DETECTOR ? DETECTOR : 'skipped: packs/shapes/detector is not built yet'})`, () => {
  it('scores every image, batch by batch, and applies the selection rule', async () => {
    const judge = await Judge.load(
      validateJudgeConfig({ detector: DETECTOR, captioner: join(PACK, 'captioner'), clip: join(PACK, 'clip'), batchSize: 2, threshold: 0 }),
    );
    const images = [flat(240, 240, 240), flat(20, 20, 20), flat(128, 128, 128)];
    const verdict = await judge.judge('two red stars on a white background', 'star', images);
    expect(verdict.judgements).toHaveLength(3);
    for (const j of verdict.judgements) {
      expect(j.detection.confidence).toBeGreaterThan(0);
      expect(j.detection.statedCount).toBe(2);
      expect(typeof j.caption?.caption).toBe('string');
      expect(j.clip?.score100).toBeCloseTo(100 * Math.max(j.clip?.cosine ?? 0, 0), 6);
      // The image embedding comes unit length, so the evaluation can compare images by it.
      expect(Math.hypot(...(j.clip?.embedding ?? []))).toBeCloseTo(1, 5);
      expect(j.combined).toBeGreaterThanOrEqual(0);
      expect(j.combined).toBeLessThanOrEqual(1);
    }
    // Threshold 0: every image counts as detected, so the rule must pick one.
    expect(verdict.selected).not.toBeNull();
  });

  it('judges a batch the same as one image at a time', async () => {
    const config = { detector: DETECTOR, captioner: join(PACK, 'captioner') };
    const images = [flat(240, 40, 40), flat(40, 80, 220), flat(22, 22, 22)];
    const batched = await (await Judge.load(validateJudgeConfig({ ...config, batchSize: 3 }))).judge('a red star', 'star', images);
    const single = await (await Judge.load(validateJudgeConfig({ ...config, batchSize: 1 }))).judge('a red star', 'star', images);
    batched.judgements.forEach((j, i) => {
      expect(j.detection.confidence).toBeCloseTo(single.judgements[i]!.detection.confidence, 5);
      expect(j.caption?.caption).toBe(single.judgements[i]!.caption?.caption);
    });
  });
});
