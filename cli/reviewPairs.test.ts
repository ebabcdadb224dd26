/** The blind pairs, their sides, the page and the votes it may send. */
import { describe, expect, it } from 'vitest';

import { artifactKeys } from '../contract/keys.js';
import type { EvaluationRecord } from '../contract/records.js';
import { reviewPageHtml } from './reviewPage.js';
import { parseVote, resolveAnswer, reviewPairs, tunedOnLeft, type ReviewPair } from './reviewPairs.js';

const ROOT = 'runs/wf/run-1/round-001';

function record(promptIndex: number, seeds: number[]): EvaluationRecord {
  const scores = (side: 'base' | 'tuned') => seeds.map((_, s) => ({ key: artifactKeys.evaluationImage(ROOT, side, promptIndex, s), clip: 20, detection: 0.5 }));
  return { promptIndex, className: 'circle', text: `prompt ${promptIndex}`, seeds, base: scores('base'), parent: null, tuned: scores('tuned') };
}

const records = Array.from({ length: 20 }, (_, i) => record(i, [100 * i, 100 * i + 1]));

describe('review pairs', () => {
  it('are one per held-out prompt and seed, numbered in prompt then seed order', () => {
    const pairs = reviewPairs(ROOT, [records[1]!, records[0]!]);
    expect(pairs.map((p) => [p.pair, p.promptIndex, p.seed])).toEqual([
      [0, 0, 0],
      [1, 0, 1],
      [2, 1, 100],
      [3, 1, 101],
    ]);
  });

  it('show the base and the tuned image of the same prompt and seed, one on each side', () => {
    for (const p of reviewPairs(ROOT, records)) {
      const s = p.seed % 100;
      const keys = [artifactKeys.evaluationImage(ROOT, 'base', p.promptIndex, s), artifactKeys.evaluationImage(ROOT, 'tuned', p.promptIndex, s)];
      expect([p.images.left, p.images.right].sort()).toEqual(keys);
      expect(p.images[p.left === 'tuned' ? 'left' : 'right']).toBe(keys[1]);
    }
  });

  it('keep their sides from one load to the next, and the sides follow no simple rule', () => {
    const pairs = reviewPairs(ROOT, records);
    expect(reviewPairs(ROOT, [...records].reverse())).toEqual(pairs);
    const tunedLeft = pairs.filter((p) => p.left === 'tuned').length;
    // 40 fair coin flips: 8 to 32 tuned on the left is far inside chance.
    expect(tunedLeft).toBeGreaterThan(8);
    expect(tunedLeft).toBeLessThan(32);
    expect(pairs.filter((p) => p.pair % 2 === 0).every((p) => p.left === pairs[0]!.left)).toBe(false);
    // Another round's folder draws its own sides.
    const other = reviewPairs('runs/wf/run-2/round-001', records);
    expect(other.map((p) => p.left)).not.toEqual(pairs.map((p) => p.left));
    expect(tunedOnLeft(ROOT, 3, 301)).toBe(tunedOnLeft(ROOT, 3, 301));
  });

  it('skip a seed whose base or tuned image is not recorded', () => {
    const partial = { ...record(0, [1, 2]), tuned: record(0, [1]).tuned };
    expect(reviewPairs(ROOT, [partial]).map((p) => p.seed)).toEqual([1]);
  });
});

describe('a vote', () => {
  const pairs = reviewPairs(ROOT, records);
  const leftTuned = pairs.find((p) => p.left === 'tuned')!;
  const leftBase = pairs.find((p) => p.left === 'base')!;

  it('resolves left and right to the generator shown there', () => {
    expect(resolveAnswer(leftTuned, 'left')).toBe('tuned');
    expect(resolveAnswer(leftTuned, 'right')).toBe('base');
    expect(resolveAnswer(leftBase, 'left')).toBe('base');
    expect(resolveAnswer(leftBase, 'right')).toBe('tuned');
    expect(resolveAnswer(leftBase, 'same')).toBe('same');
  });

  it('names a pair the page has and one of the three answers', () => {
    expect(parseVote({ pair: 3, choice: 'same' }, pairs)).toEqual({ ok: true, pair: pairs[3], answer: 'same' });
    expect(parseVote({ pair: 40, choice: 'left' }, pairs)).toEqual({ ok: false, message: 'pair: expected an integer in [0, 39], got 40' });
    expect(parseVote({ pair: 1.5, choice: 'left' }, pairs)).toMatchObject({ ok: false, message: expect.stringContaining('pair:') });
    expect(parseVote({ pair: '1', choice: 'left' }, pairs)).toMatchObject({ ok: false, message: expect.stringContaining('got "1"') });
    expect(parseVote({ pair: 1, choice: 'tuned' }, pairs)).toEqual({ ok: false, message: 'choice: expected "left", "right" or "same", got "tuned"' });
    expect(parseVote({ pair: 1 }, pairs)).toEqual({ ok: false, message: 'choice: expected "left", "right" or "same", got null' });
    expect(parseVote([1, 'left'], pairs)).toMatchObject({ ok: false, message: expect.stringContaining('pair:') });
    expect(parseVote(null, pairs)).toMatchObject({ ok: false, message: expect.stringContaining('JSON object') });
  });
});

describe('the review page', () => {
  const pairs = reviewPairs(ROOT, records.slice(0, 3));
  const flipped: ReviewPair[] = pairs.map((p) => ({
    ...p,
    left: p.left === 'tuned' ? 'base' : 'tuned',
    images: { left: p.images.right, right: p.images.left },
  }));

  it('is the same page whichever side each generator is on: it cannot tell', () => {
    expect(reviewPageHtml(1, flipped)).toBe(reviewPageHtml(1, pairs));
  });

  it('holds no store key, folder or seed, and asks for images by pair number and side only', () => {
    const html = reviewPageHtml(1, pairs);
    expect(html).not.toContain('runs/');
    expect(html).not.toContain('evaluation');
    expect(html).not.toContain('.png"');
    expect(html).toContain("'/pair/' + at + '/left.png'");
    expect(html).toContain('prompt 2');
  });

  it('keeps a prompt that holds markup from ending its script', () => {
    const tricky = reviewPairs(ROOT, [{ ...records[0]!, text: '</script><script>alert(1)</script>' }]);
    const html = reviewPageHtml(1, tricky);
    expect(html).not.toContain('</script><script>alert(1)');
    expect(html).toContain('\\u003c/script>');
  });
});
