import { describe, expect, it } from 'vitest';
import { DEFAULT_WEIGHTS, validateJudgeConfig } from './config.js';

describe('judge configuration', () => {
  it("fills defaults: local models only, CPU, the paper's threshold", () => {
    const config = validateJudgeConfig({ detector: 'packs/shapes/detector' });
    expect(config).toMatchObject({ captioner: null, clip: null, threshold: 0.5, device: 'cpu', allowRemoteModels: false, weights: DEFAULT_WEIGHTS });
  });

  it('accepts partial weights, synonyms and a CUDA device', () => {
    const config = validateJudgeConfig({ detector: 'd', weights: { clip: 0 }, synonyms: { Person: ['People'] }, device: 'cuda:1' });
    expect(config.weights).toEqual({ ...DEFAULT_WEIGHTS, clip: 0 });
    expect(config.synonyms).toEqual({ person: ['people'] });
    expect(config.device).toBe('cuda:1');
  });

  it.each([
    [{}, /detector must be a non-empty folder path/],
    [{ detector: 'd', threshold: 1.5 }, /threshold must be a number in \[0, 1\], got 1.5/],
    [{ detector: 'd', iouThreshold: 'x' }, /iouThreshold must be a number in \[0, 1\]/],
    [{ detector: 'd', batchSize: 0 }, /batchSize must be an integer >= 1/],
    [{ detector: 'd', weights: { clip: -1 } }, /weights.clip must be a finite number >= 0/],
    [{ detector: 'd', weights: { colour: 1 } }, /weights.colour must be one of/],
    [{ detector: 'd', weights: { detection: 0, checklist: 0, similarity: 0, clip: 0, count: 0 } }, /weights must be not all zero/],
    [{ detector: 'd', synonyms: { person: [''] } }, /synonyms.person\[0\] must be a non-empty string/],
    [{ detector: 'd', device: 'gpu' }, /device must be "cpu", "cuda" or "cuda:N"/],
    [{ detector: 'd', allowRemoteModels: 'yes' }, /allowRemoteModels must be a boolean/],
    [{ detector: 'd', captioner: '' }, /captioner must be a non-empty folder path/],
    [{ detector: 'd', treshold: 0.3 }, /treshold must be a known field/],
    [null, /config must be an object/],
  ])('rejects %j naming the field', (input, message) => {
    expect(() => validateJudgeConfig(input)).toThrow(message);
  });
});
