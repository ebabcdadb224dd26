import { describe, expect, it } from 'vitest';
import { instances, iou, type Candidate } from './boxes.js';
import { DEFAULT_WEIGHTS } from './config.js';
import { checkCaption, checklist, clipScore100, clipScoreHessel, combinedScore, cosine, rank, select, summariseDetection, unitVector } from './scores.js';

const at = (score: number, xmin: number, ymin: number, size = 10): Candidate => ({
  score,
  box: { xmin, ymin, xmax: xmin + size, ymax: ymin + size },
});

describe('boxes', () => {
  it('measures intersection over union', () => {
    expect(iou(at(1, 0, 0).box, at(1, 0, 0).box)).toBe(1);
    expect(iou(at(1, 0, 0).box, at(1, 5, 0).box)).toBeCloseTo(50 / 150, 12);
    expect(iou(at(1, 0, 0).box, at(1, 20, 20).box)).toBe(0);
  });

  it('counts overlapping proposals as one instance', () => {
    const kept = instances([at(0.9, 0, 0), at(0.8, 1, 1), at(0.7, 30, 30), at(0.2, 50, 50)], 0.5, 0.5);
    expect(kept.map((c) => c.score)).toEqual([0.9, 0.7]);
  });
});

describe('detection summary', () => {
  const proposals = [at(0.9, 0, 0), at(0.85, 1, 0), at(0.6, 30, 30), at(0.1, 50, 50)];

  it('reports best confidence, instances, boxes and the count check', () => {
    const d = summariseDetection(proposals, 'two red stars', 'star', [], 0.5, 0.5);
    expect(d.confidence).toBe(0.9);
    expect(d.instances).toBe(2);
    expect(d.boxes).toEqual([at(0.9, 0, 0).box, at(0.6, 30, 30).box]);
    expect(d.statedCount).toBe(2);
    expect(d.countMatches).toBe(true);
    expect(summariseDetection(proposals, 'three red stars', 'star', [], 0.5, 0.5).countMatches).toBe(false);
  });

  it('leaves the count unchecked when the prompt states none', () => {
    const d = summariseDetection(proposals, 'red stars', 'star', [], 0.5, 0.5);
    expect(d.countMatches).toBeNull();
  });

  it('reports zero confidence when there are no proposals', () => {
    expect(summariseDetection([], 'a star', 'star', [], 0.5, 0.5).confidence).toBe(0);
  });
});

describe('caption checklist', () => {
  const prompt = 'two red triangles on a white background';
  const colours = ['red', 'white', 'blue'];

  it('gives a point each for class, attributes and count', () => {
    expect(checklist(checkCaption(prompt, prompt, 'triangle', [], colours))).toBe(3);
    expect(checklist(checkCaption('two blue triangles on a white background', prompt, 'triangle', [], colours))).toBe(2);
    expect(checklist(checkCaption('a red triangle on a white background', prompt, 'triangle', [], colours))).toBe(2);
    expect(checklist(checkCaption('two red squares on a white background', prompt, 'triangle', [], colours))).toBe(1);
  });

  it("scores attributes as the share of the prompt's attribute words repeated", () => {
    expect(checkCaption('two blue triangles on a white background', prompt, 'triangle', [], colours).attributes).toBe(0.5);
  });
});

describe('CLIP scores', () => {
  it('uses both conventions and clips negative cosines', () => {
    expect(clipScore100(0.31)).toBeCloseTo(31, 12);
    expect(clipScoreHessel(0.31)).toBeCloseTo(0.775, 12);
    expect(clipScore100(-0.2)).toBe(0);
    expect(clipScoreHessel(-0.2)).toBe(0);
  });

  it('scales a vector to unit length, leaving a zero vector zero', () => {
    expect(Array.from(unitVector(new Float32Array([3, 4])))).toEqual([Math.fround(0.6), Math.fround(0.8)]);
    expect(Array.from(unitVector(new Float32Array([0, 0])))).toEqual([0, 0]);
  });

  it('computes cosine independent of scale', () => {
    expect(cosine(new Float32Array([1, 0]), new Float32Array([3, 0]))).toBe(1);
    expect(cosine(new Float32Array([1, 0]), new Float32Array([0, 2]))).toBe(0);
  });
});

describe('combined score', () => {
  const detection = summariseDetection([at(0.8, 0, 0)], 'a red star', 'star', [], 0.5, 0.5);
  const caption = checkCaption('a red star', 'a red star', 'star', [], ['red']);

  it('is the weighted mean of the available parts', () => {
    const w = DEFAULT_WEIGHTS;
    const expected =
      (w.detection * 0.8 + w.checklist * 1 + w.similarity * 1 + w.clip * 0.3 + w.count * 1) / (w.detection + w.checklist + w.similarity + w.clip + w.count);
    expect(combinedScore({ detection, caption, clipCosine: 0.3 }, w)).toBeCloseTo(expected, 12);
  });

  it('leaves missing parts out of the weights', () => {
    const weights = { ...DEFAULT_WEIGHTS, count: 0 };
    expect(combinedScore({ detection, caption: null, clipCosine: null }, weights)).toBeCloseTo(0.8, 12);
  });
});

describe('selection rule', () => {
  it('keeps the top checklist tier, then the highest detection', () => {
    const images = [
      { checklist: 2, confidence: 0.9 },
      { checklist: 3, confidence: 0.6 },
      { checklist: 3, confidence: 0.7 },
      { checklist: 3, confidence: 0.4 },
    ];
    expect(select(images, 0.5)).toBe(2);
  });

  it('ignores undetected images, even in a higher tier', () => {
    expect(
      select(
        [
          { checklist: 3, confidence: 0.4 },
          { checklist: 1, confidence: 0.6 },
        ],
        0.5,
      ),
    ).toBe(1);
  });

  it('keeps the first of equal images', () => {
    expect(
      select(
        [
          { checklist: 1, confidence: 0.6 },
          { checklist: 1, confidence: 0.6 },
        ],
        0.5,
      ),
    ).toBe(0);
  });

  it('ranks every detected image: tier, then confidence, then order', () => {
    const images = [
      { checklist: 2, confidence: 0.9 },
      { checklist: 3, confidence: 0.6 },
      { checklist: 3, confidence: 0.4 },
      { checklist: 3, confidence: 0.7 },
      { checklist: 2, confidence: 0.9 },
    ];
    expect(rank(images, 0.5)).toEqual([3, 1, 0, 4]);
    expect(rank(images, 0.95)).toEqual([]);
  });

  it('drops the prompt when the class is never detected', () => {
    expect(select([{ checklist: 3, confidence: 0.49 }], 0.5)).toBeNull();
    expect(select([], 0.5)).toBeNull();
  });
});
