import { describe, expect, it } from 'vitest';
import { namesClass, pluralName, statedCount, tokenOverlap } from './text.js';

describe('class names', () => {
  it.each([
    ['star', 'stars'],
    ['cross', 'crosses'],
    ['box', 'boxes'],
    ['butterfly', 'butterflies'],
    ['traffic light', 'traffic lights'],
  ])('pluralises %s as %s', (name, plural) => {
    expect(pluralName(name)).toBe(plural);
  });

  it('finds singular, plural and multi-word names as whole words', () => {
    expect(namesClass('two yellow stars on a gray background', 'star', [])).toBe(true);
    expect(namesClass('an orange cross.', 'cross', [])).toBe(true);
    expect(namesClass('Traffic lights at a crossing', 'traffic light', [])).toBe(true);
    expect(namesClass('a light in traffic', 'traffic light', [])).toBe(false);
    expect(namesClass('a starfish', 'star', [])).toBe(false);
  });

  it('accepts configured synonyms, irregular plurals included', () => {
    expect(namesClass('three people on a bench', 'person', ['people'])).toBe(true);
    expect(namesClass('a man on a bench', 'person', [])).toBe(false);
  });
});

describe('stated count', () => {
  it.each([
    ['two red triangles on a white background', 'triangle', 2],
    ['an orange cross on a gray background', 'cross', 1],
    ['a photo of three small brown elephants', 'elephant', 3],
    ['4 traffic lights', 'traffic light', 4],
    ['elephants on a plain', 'elephant', null],
    ['a photo of a savanna', 'elephant', null],
  ])('%s → %s', (text, cls, count) => {
    expect(statedCount(text, cls, [])).toBe(count);
  });

  it("reads the count next to the class, not another noun's", () => {
    expect(statedCount('on a white background two stars', 'star', [])).toBe(2);
  });
});

describe('caption–prompt overlap', () => {
  it('is the Dice coefficient of word sets', () => {
    expect(tokenOverlap('a red star', 'a red star')).toBe(1);
    expect(tokenOverlap('a red star', 'a blue star')).toBeCloseTo(2 / 3, 12);
    expect(tokenOverlap('', '')).toBe(0);
  });
});
