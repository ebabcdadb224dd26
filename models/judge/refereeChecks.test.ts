import { describe, expect, it } from 'vitest';

import { GENEVAL_COLOURS } from './config.js';
import { bestBox, promptAttributes, refereeVerdict, zeroShot, type RefereeThresholds } from './refereeChecks.js';

const SHAPES_COLOURS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'];
const BACKGROUNDS = ['white', 'black', 'gray'];
const THRESHOLDS: RefereeThresholds = { presenceThreshold: 0.3, countThreshold: 0.9, iouThreshold: 0.5 };
const box = (x: number) => ({ xmin: x, ymin: 0, xmax: x + 10, ymax: 10 });

describe('promptAttributes', () => {
  it("reads the class's colour before its noun and the background before 'background', from the vocabularies", () => {
    expect(promptAttributes('three orange circles on a white background', 'circle', [], SHAPES_COLOURS, BACKGROUNDS)).toEqual({
      colour: 'orange',
      background: 'white',
    });
    // White is a background here, not the circle's colour: the colour must stand before the class.
    expect(promptAttributes('a circle on a white background', 'circle', [], GENEVAL_COLOURS, BACKGROUNDS)).toEqual({ colour: null, background: 'white' });
  });

  it('gives null for what the prompt does not name from the vocabularies', () => {
    expect(promptAttributes('a photo of a dog', 'dog', [], GENEVAL_COLOURS, [])).toEqual({ colour: null, background: null });
    expect(promptAttributes('a teal dog on a pink background', 'dog', [], GENEVAL_COLOURS, BACKGROUNDS)).toEqual({ colour: null, background: null });
    // A synonym names the class; a colour too far before it does not count.
    expect(promptAttributes('two brown people', 'person', ['people'], GENEVAL_COLOURS, [])).toEqual({ colour: 'brown', background: null });
    expect(promptAttributes('red and then some other big cats', 'cat', [], GENEVAL_COLOURS, [])).toEqual({ colour: null, background: null });
  });
});

describe('zeroShot', () => {
  it('picks the label whose text is closest to the image', () => {
    const texts = [Float32Array.of(1, 0), Float32Array.of(0, 1)];
    expect(zeroShot(Float32Array.of(0.2, 0.9), texts, ['red', 'blue'])).toBe('blue');
    expect(zeroShot(Float32Array.of(0.9, 0.2), texts, ['red', 'blue'])).toBe('red');
  });
});

describe('refereeVerdict', () => {
  const wanted = { colour: 'red', background: 'white' };

  it('finds the class at the presence threshold, counts at the count threshold, and checks colour and background', () => {
    const candidates = [
      { score: 0.95, box: box(0) },
      { score: 0.92, box: box(40) },
      { score: 0.5, box: box(80) },
    ];
    const v = refereeVerdict({ candidates, statedCount: 2, wanted, pickedColour: 'red', pickedBackground: 'white' }, THRESHOLDS);
    expect(v).toEqual({
      presence: 0.95,
      present: true,
      instances: 2,
      countCorrect: true,
      colour: 'red',
      colourCorrect: true,
      background: 'white',
      backgroundCorrect: true,
      allCorrect: true,
    });
    // The third box is present at 0.3 but not an instance at 0.9: a stated count of 3 is wrong.
    expect(refereeVerdict({ candidates, statedCount: 3, wanted, pickedColour: 'red', pickedBackground: 'white' }, THRESHOLDS)).toMatchObject({
      countCorrect: false,
      allCorrect: false,
    });
  });

  it('fails the colour of an absent object, and leaves checks the prompt does not ask for null', () => {
    const absent = refereeVerdict(
      { candidates: [{ score: 0.2, box: box(0) }], statedCount: null, wanted, pickedColour: null, pickedBackground: 'white' },
      THRESHOLDS,
    );
    expect(absent).toMatchObject({ present: false, countCorrect: null, colour: null, colourCorrect: false, backgroundCorrect: true, allCorrect: false });
    const plain = refereeVerdict(
      { candidates: [{ score: 0.4, box: box(0) }], statedCount: null, wanted: { colour: null, background: null }, pickedColour: null, pickedBackground: null },
      THRESHOLDS,
    );
    expect(plain).toMatchObject({ present: true, countCorrect: null, colourCorrect: null, backgroundCorrect: null, allCorrect: true });
    const wrongColour = refereeVerdict(
      { candidates: [{ score: 0.4, box: box(0) }], statedCount: null, wanted, pickedColour: 'blue', pickedBackground: 'white' },
      THRESHOLDS,
    );
    expect(wrongColour).toMatchObject({ colour: 'blue', colourCorrect: false, allCorrect: false });
  });

  it("crops the class's best box at the presence threshold", () => {
    expect(bestBox([{ score: 0.2, box: box(0) }], 0.3)).toBeNull();
    expect(
      bestBox(
        [
          { score: 0.4, box: box(0) },
          { score: 0.8, box: box(50) },
        ],
        0.3,
      ),
    ).toEqual(box(50));
  });
});
