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
    [{}, /detector: expected a non-empty string, got nothing/],
    [{ detector: 'd', threshold: 1.5 }, /threshold: expected a number in \[0, 1\], got 1.5/],
    [{ detector: 'd', iouThreshold: 'x' }, /iouThreshold: expected a number in \[0, 1\]/],
    [{ detector: 'd', batchSize: 0 }, /batchSize: expected an integer in \[1, 1024\]/],
    [{ detector: 'd', weights: { clip: -1 } }, /weights.clip: expected a finite number >= 0/],
    [{ detector: 'd', weights: { colour: 1 } }, /weights.colour: expected no such field \(known: detection, checklist/],
    [{ detector: 'd', weights: { detection: 0, checklist: 0, similarity: 0, clip: 0, count: 0 } }, /weights: expected weights not all zero/],
    [{ detector: 'd', synonyms: { person: [''] } }, /synonyms.person.0: expected a non-empty string/],
    // As JSON.parse reads it: an own key, where an object literal would set the prototype.
    [JSON.parse('{"detector": "d", "synonyms": {"__proto__": ["x"]}}') as unknown, /synonyms.__proto__: expected a class name other than __proto__/],
    [{ detector: 'd', device: 'gpu' }, /device: expected "cpu", "cuda" or "cuda:N"/],
    [{ detector: 'd', allowRemoteModels: 'yes' }, /allowRemoteModels: expected true or false/],
    [{ detector: 'd', captioner: '' }, /captioner: expected null or a non-empty string/],
    [{ detector: 'd', treshold: 0.3 }, /treshold: expected no such field/],
    [null, /\(input\): expected an object, got null/],
  ])('rejects %j naming the field', (input, message) => {
    expect(() => validateJudgeConfig(input)).toThrow(message);
  });
});
