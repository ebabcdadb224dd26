/**
 * Parity of the evaluation's diversity and accuracy-gain arithmetic with numpy:
 * python/parity/evaluation_reference.py computes the same figures from the raw embeddings and
 * detections of a random case, its own way (Gram matrix of unit vectors; numpy percentiles of
 * the bootstrap resamples, drawn by the same seeded generator).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import type { EvaluationRecord } from '../contract/records.js';
import { mulberry32 } from '../models/evaluation/prng.js';
import { meanPairwiseCosineDistance } from '../models/evaluation/stats.js';
import { PYTHON, runPythonModule } from '../models/testing/python.js';
import { evaluationFigures } from './evaluate.js';

interface Reference {
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

describe.skipIf(!existsSync(PYTHON))('evaluation figures against numpy', () => {
  it('agree on per-prompt diversity, its means and change, and the accuracy gain with its bootstrap interval', async () => {
    const prompts = randomCase(42);
    const resamples = 3000;
    const seed = 0;
    const dir = await mkdtemp(join(tmpdir(), 'evaluation-parity-'));
    try {
      const file = join(dir, 'case.json');
      const caseJson = prompts.map((p) => ({
        embeddings: { base: p.base.embeddings, tuned: p.tuned.embeddings },
        detected: { base: p.base.detected, tuned: p.tuned.detected },
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
          className: 'circle',
          text: `prompt ${p.promptIndex}`,
          seeds: p.base.detected.map((_, s) => s),
          base: scores('base'),
          parent: null,
          tuned: scores('tuned'),
          diversity: diversity[i]!,
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
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
