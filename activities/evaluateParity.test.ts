/**
 * Parity of the evaluation's diversity, accuracy-gain and referee arithmetic with numpy:
 * python/parity/evaluation_reference.py computes the same figures from the raw embeddings and
 * detections of a random case, its own way (Gram matrix of unit vectors; numpy percentiles of
 * the bootstrap resamples, drawn by the same seeded generator).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import type { EvaluationRecord, RefereeScore } from '../contract/records.js';
import { mulberry32 } from '../models/evaluation/prng.js';
import { meanPairwiseCosineDistance } from '../models/evaluation/stats.js';
import { allCorrect } from '../models/judge/refereeChecks.js';
import { PYTHON, runPythonModule } from '../models/testing/python.js';
import { evaluationFigures } from './evaluate.js';

interface Share {
  base: number;
  tuned: number;
  gainInterval: [number, number];
}

interface Reference {
  referee: {
    objectPresent: Share;
    allCorrectImages: Share;
    allCorrectPrompts: Share;
    hacking: Record<string, { base: number; tuned: number; change: number; changeInterval: [number, number]; flagged: boolean }>;
  };
  perPrompt: Array<{ base: number; tuned: number }>;
  diversityBase: number;
  diversityTuned: number;
  diversityChange: number;
  accuracyGain: number;
  accuracyGainInterval: [number, number];
}

const SIDES = ['base', 'tuned'] as const;

/** Held-out prompts with 2 to 5 seeds, 16-wide embeddings (float32 values, so both sides read the same numbers) and random detections. */
function randomCase(seed: number) {
  const random = mulberry32(seed);
  return Array.from({ length: 9 }, (_, promptIndex) => {
    const seeds = 2 + Math.floor(random() * 4);
    const side = () => ({
      embeddings: Array.from({ length: seeds }, () => Array.from({ length: 16 }, () => Math.fround(random() * 2 - 1 + 0.3))),
      detected: Array.from({ length: seeds }, () => random() < 0.6),
    });
    return { promptIndex, base: side(), tuned: side() };
  });
}

/**
 * The referee's checks for those prompts, from a stream of their own (the case above stays as it
 * was): three classes; per prompt, whether it asks for a count, a colour and a background; per
 * image, each asked check right or not, the class present or not, the judge accepting it or not.
 */
function randomRefereeCase(seed: number, seedsOf: readonly number[]) {
  const random = mulberry32(seed);
  return seedsOf.map((seeds, promptIndex) => {
    const asks = { count: random() < 0.5, colour: random() < 0.6, background: random() < 0.5 };
    const check = (asked: boolean) => (asked ? random() < 0.85 : null);
    const side = (presentRate: number) =>
      Array.from({ length: seeds }, () => ({
        present: random() < presentRate,
        judgeAccepted: random() < 0.7,
        countCorrect: check(asks.count),
        colourCorrect: check(asks.colour),
        backgroundCorrect: check(asks.background),
      }));
    return { className: ['circle', 'square', 'star'][promptIndex % 3]!, base: side(0.7), tuned: side(0.95) };
  });
}

type RefereeCheck = ReturnType<typeof randomRefereeCase>[number]['base'][number];

function refereeScore(c: RefereeCheck): RefereeScore {
  return {
    presence: c.present ? 0.8 : 0.1,
    present: c.present,
    instances: Number(c.present),
    countCorrect: c.countCorrect,
    colour: null,
    colourCorrect: c.colourCorrect,
    background: null,
    backgroundCorrect: c.backgroundCorrect,
    allCorrect: allCorrect(c.present, [c.countCorrect, c.colourCorrect, c.backgroundCorrect]),
    judgeAccepted: c.judgeAccepted,
  };
}

describe.skipIf(!existsSync(PYTHON))('evaluation figures against numpy', () => {
  it('agree on per-prompt diversity, its means and change, the accuracy gain, and the referee figures, with their bootstrap intervals', async () => {
    const prompts = randomCase(42);
    const referee = randomRefereeCase(
      43,
      prompts.map((p) => p.base.detected.length),
    );
    const resamples = 3000;
    const seed = 0;
    const dir = await mkdtemp(join(tmpdir(), 'evaluation-parity-'));
    try {
      const file = join(dir, 'case.json');
      const caseJson = prompts.map((p, i) => ({
        className: referee[i]!.className,
        embeddings: { base: p.base.embeddings, tuned: p.tuned.embeddings },
        detected: { base: p.base.detected, tuned: p.tuned.detected },
        referee: { base: referee[i]!.base, tuned: referee[i]!.tuned },
      }));
      await writeFile(file, JSON.stringify({ prompts: caseJson, resamples, seed }));
      const reference = JSON.parse(await runPythonModule('parity.evaluation_reference', [file])) as Reference;

      const diversity = prompts.map((p) => {
        const [base, tuned] = SIDES.map((side) => meanPairwiseCosineDistance(p[side].embeddings.map((e) => Float32Array.from(e))));
        return { base: base!, parent: null, tuned: tuned! };
      });
      diversity.forEach((d, i) => {
        expect(d.base).toBeCloseTo(reference.perPrompt[i]!.base, 12);
        expect(d.tuned).toBeCloseTo(reference.perPrompt[i]!.tuned, 12);
      });

      const records: EvaluationRecord[] = prompts.map((p, i) => {
        const scores = (side: 'base' | 'tuned') =>
          p[side].detected.map((found, s) => ({ key: `${side}-${p.promptIndex}-${s}`, clip: 20, detection: found ? 0.9 : 0.1 }));
        return {
          promptIndex: p.promptIndex,
          className: referee[i]!.className,
          text: `prompt ${p.promptIndex}`,
          seeds: p.base.detected.map((_, s) => s),
          base: scores('base'),
          parent: null,
          tuned: scores('tuned'),
          diversity: diversity[i]!,
          referee: {
            colour: null,
            background: null,
            base: referee[i]!.base.map(refereeScore),
            parent: null,
            tuned: referee[i]!.tuned.map(refereeScore),
          },
        };
      });
      const figures = evaluationFigures(records, 0.5, resamples);
      expect(figures.diversityBase).toBeCloseTo(reference.diversityBase, 12);
      expect(figures.diversityTuned).toBeCloseTo(reference.diversityTuned, 12);
      expect(figures.diversityChange).toBeCloseTo(reference.diversityChange, 12);
      expect(figures.accuracyTuned - figures.accuracyBase).toBeCloseTo(reference.accuracyGain, 12);
      expect(figures.accuracyGainInterval![0]).toBeCloseTo(reference.accuracyGainInterval[0], 12);
      expect(figures.accuracyGainInterval![1]).toBeCloseTo(reference.accuracyGainInterval[1], 12);
      // A random case whose interval is not degenerate, so the check has something to agree on.
      expect(reference.accuracyGainInterval[1] - reference.accuracyGainInterval[0]).toBeGreaterThan(0.05);

      // The referee's figures: per image and per prompt (every seed's image all-correct), and the hacking check per class.
      const ours = figures.referee!;
      const agree = (share: { base: number; tuned: number; gainInterval: readonly [number, number] }, theirs: Share) => {
        expect(share.base).toBeCloseTo(theirs.base, 12);
        expect(share.tuned).toBeCloseTo(theirs.tuned, 12);
        expect(share.gainInterval[0]).toBeCloseTo(theirs.gainInterval[0], 12);
        expect(share.gainInterval[1]).toBeCloseTo(theirs.gainInterval[1], 12);
      };
      agree(ours.objectPresent, reference.referee.objectPresent);
      agree(ours.allCorrectImages, reference.referee.allCorrectImages);
      agree(ours.allCorrectPrompts, reference.referee.allCorrectPrompts);
      expect(Object.keys(ours.hacking)).toEqual(Object.keys(reference.referee.hacking));
      for (const [className, theirs] of Object.entries(reference.referee.hacking)) {
        const h = ours.hacking[className]!;
        expect(h.base).toBeCloseTo(theirs.base, 12);
        expect(h.tuned).toBeCloseTo(theirs.tuned, 12);
        expect(h.change).toBeCloseTo(theirs.change, 12);
        expect(h.changeInterval[0]).toBeCloseTo(theirs.changeInterval[0], 12);
        expect(h.changeInterval[1]).toBeCloseTo(theirs.changeInterval[1], 12);
        expect(h.flagged).toBe(theirs.flagged);
      }
      expect(ours.flaggedClasses).toEqual(Object.keys(reference.referee.hacking).filter((c) => reference.referee.hacking[c]!.flagged));
      // Not degenerate: prompts differ in their all-correct outcome, and the per-prompt interval has width.
      expect(reference.referee.allCorrectPrompts.gainInterval[1] - reference.referee.allCorrectPrompts.gainInterval[0]).toBeGreaterThan(0.05);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
