/** The activities' pure parts: keys, seeds, evaluation figures, the report page. */
import { describe, expect, it } from 'vitest';

import { roundInputWith } from '../test/activity.js';
import { currentEvaluation } from '../contract/activities.js';
import { comparisonSampling, evaluationFigures } from './evaluate.js';
import type { EvaluationRecord, EvaluationScore, PromptDiversity, PromptScores } from '../contract/records.js';
import { artifactKeys, evaluationSeed, roundRoot, shardPromptIndices, trainingSeed } from '../contract/keys.js';
import { histogramSvg } from './reportCharts.js';
import { humanReviewSection, reportHtml, withHumanReviewSection } from './reportPage.js';

describe('artifact keys', () => {
  it('derive from the workflow id, run, round and shard only, whatever the id holds', () => {
    expect(roundRoot('my round/1', 'run-a', 2)).toBe('runs/my%20round%2F1/run-a/round-002');
    expect(roundRoot('.hidden', 'run-b', 1)).toBe('runs/%2Ehidden/run-b/round-001');
    expect(artifactKeys.sampledImage('r', 1, 12, 3)).toBe('r/samples/shard-001/00012-003.png');
    expect(artifactKeys.sampleManifest('r', 1)).toBe('r/samples/shard-001.json');
  });

  it('split prompts round-robin over shards and give every image its own seed', () => {
    expect(shardPromptIndices(7, 3, 1)).toEqual([1, 4]);
    expect([0, 1, 2].flatMap((s) => shardPromptIndices(7, 3, s)).sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(trainingSeed(10, 8, 2, 5)).toBe(31);
    expect(evaluationSeed(500_000, 3, 1)).toBe(500_301);
  });
});

function record(
  promptIndex: number,
  className: string,
  base: number[],
  tuned: number[],
  detected: boolean[],
  parent: number[] | null = null,
  diversity?: PromptDiversity | null,
): EvaluationRecord {
  return {
    ...(diversity === undefined ? {} : { diversity }),
    promptIndex,
    className,
    text: `prompt ${promptIndex}`,
    seeds: base.map((_, s) => s),
    base: base.map((clip, s) => ({ key: `b${promptIndex}-${s}`, clip, detection: detected[s] ? 0.9 : 0.1 })),
    parent: parent === null ? null : parent.map((clip, s) => ({ key: `p${promptIndex}-${s}`, clip, detection: 0.9 })),
    tuned: tuned.map((clip, s) => ({ key: `t${promptIndex}-${s}`, clip, detection: 0.9 })),
  };
}

describe('comparisonSampling', () => {
  const input = (evaluation: Record<string, unknown>) =>
    roundInputWith({
      sampling: { guidanceScale: 1.5, scheduler: 'EulerAncestralDiscreteScheduler' },
      evaluation: { prompts: { file: 'e.txt' }, ...evaluation },
    });

  it("samples the comparison at the round's guidance unless evaluation.guidanceScale is set", () => {
    expect(comparisonSampling(input({})).guidanceScale).toBe(1.5);
    expect(comparisonSampling(input({ guidanceScale: 7.5 }))).toMatchObject({ guidanceScale: 7.5, steps: 20 });
  });

  it("samples the comparison with the round's scheduler unless evaluation.scheduler is set", () => {
    expect(comparisonSampling(input({})).scheduler).toBe('EulerAncestralDiscreteScheduler');
    expect(comparisonSampling(input({ scheduler: 'DDIMScheduler' }))).toMatchObject({ scheduler: 'DDIMScheduler', guidanceScale: 1.5 });
  });
});

describe('evaluationFigures', () => {
  it('pairs base and tuned by prompt and seed', () => {
    const figures = evaluationFigures(
      [record(0, 'circle', [20, 30], [25, 30], [true, false]), record(1, 'square', [20, 20], [10, 30], [false, false])],
      0.5,
      200,
    );
    expect(figures.pairs).toBe(4);
    expect(figures.winRate).toBe((1 + 0.5 + 0 + 1) / 4);
    expect(figures.meanClipBase).toBe(22.5);
    expect(figures.meanClipTuned).toBe(23.75);
    expect(figures.accuracyBase).toBe(0.25);
    expect(figures.accuracyTuned).toBe(1);
    expect(figures.perClass['circle']).toEqual({ pairs: 2, base: 0.5, tuned: 1 });
    expect(figures.winRateInterval[0]).toBeLessThanOrEqual(figures.winRate);
    expect(figures.winRateInterval[1]).toBeGreaterThanOrEqual(figures.winRate);
    expect(figures.parent).toBeNull();
  });

  it('compares against the parent too when the records hold its images, with the same seeds', () => {
    const figures = evaluationFigures([record(0, 'circle', [20, 30], [25, 30], [true, false], [26, 10])], 0.5, 200);
    expect(figures.winRate).toBe(0.75);
    expect(figures.parent).toMatchObject({ pairs: 2, winRate: 0.5, meanClipBase: 18, accuracyBase: 1, accuracyTuned: 1 });
  });
});

describe('evaluationFigures: the accuracy gain interval', () => {
  // One seed each: prompt 0 gains (missed by the base, found by the tuned), prompt 1 does not (found by both).
  const records = [record(0, 'circle', [1], [1], [false]), record(1, 'circle', [1], [1], [true])];

  it('bootstraps the gain over prompts: resamples gain 0, 0.5 or 1, so the 95% interval spans [0, 1]', () => {
    const figures = evaluationFigures(records, 0.5, 2000);
    expect(figures.accuracyTuned - figures.accuracyBase).toBe(0.5);
    expect(figures.accuracyGainInterval).toEqual([0, 1]);
  });

  it("keeps a prompt's seeds together: one prompt gives a degenerate interval at its gain", () => {
    const figures = evaluationFigures([record(0, 'circle', [1, 1], [1, 1], [false, true])], 0.5, 500);
    expect(figures.accuracyGainInterval).toEqual([0.5, 0.5]);
  });

  it('is computed against the parent as well', () => {
    // The parent finds the class in every image, as the tuned generator does: no gain.
    const figures = evaluationFigures([record(0, 'circle', [1], [1], [false], [1]), record(1, 'circle', [1], [1], [true], [1])], 0.5, 500);
    expect(figures.parent?.accuracyGainInterval).toEqual([0, 0]);
  });
});

describe('evaluationFigures: diversity', () => {
  const withDiversity = (promptIndex: number, diversity: PromptDiversity | null | undefined, parent: number[] | null = null) =>
    record(promptIndex, 'circle', [20, 30], [25, 30], [true, true], parent, diversity);

  it("averages the prompts' diversities and gives the change, tuned over base less 1", () => {
    const figures = evaluationFigures(
      [withDiversity(0, { base: 0.6, parent: null, tuned: 0.5 }), withDiversity(1, { base: 0.4, parent: null, tuned: 0.3 })],
      0.5,
      100,
    );
    expect(figures.diversityBase).toBeCloseTo(0.5, 12);
    expect(figures.diversityTuned).toBeCloseTo(0.4, 12);
    expect(figures.diversityChange).toBeCloseTo(-0.2, 12);
    expect(figures.parent).toBeNull();
  });

  it("compares with the parent's diversity against the parent", () => {
    const figures = evaluationFigures([withDiversity(0, { base: 0.6, parent: 0.25, tuned: 0.5 }, [20, 20])], 0.5, 100);
    expect(figures.diversityChange).toBeCloseTo(0.5 / 0.6 - 1, 12);
    expect(figures.parent).toMatchObject({ diversityBase: 0.25, diversityTuned: 0.5, diversityChange: 1 });
  });

  it('is null with one seed per prompt, for records of earlier versions (even some), and when the base has none', () => {
    const none = { diversityBase: null, diversityTuned: null, diversityChange: null };
    expect(evaluationFigures([withDiversity(0, null)], 0.5, 100)).toMatchObject(none);
    expect(evaluationFigures([withDiversity(0, undefined)], 0.5, 100)).toMatchObject(none);
    expect(evaluationFigures([withDiversity(0, { base: 0.6, parent: null, tuned: 0.5 }), withDiversity(1, undefined)], 0.5, 100)).toMatchObject(none);
    expect(evaluationFigures([withDiversity(0, { base: 0, parent: null, tuned: 0.5 })], 0.5, 100)).toMatchObject({
      diversityBase: 0,
      diversityTuned: 0.5,
      diversityChange: null,
    });
  });

  it('reads an evaluation.json of an earlier version with the later figures null', () => {
    const {
      accuracyGainInterval: _g,
      diversityBase: _b,
      diversityTuned: _t,
      diversityChange: _c,
      ...old
    } = evaluationFigures([withDiversity(0, undefined)], 0.5, 100);
    const read = currentEvaluation({ manifest: 'm', ...old });
    expect(read).toMatchObject({ manifest: 'm', accuracyGainInterval: null, diversityBase: null, diversityTuned: null, diversityChange: null, parent: null });
    expect(read.winRate).toBe(old.winRate);
  });
});

describe('evaluationFigures: counting accuracy', () => {
  /** A held-out prompt stating `stated` (or no) count, with the detector's instance count per seed and side. */
  const counted = (promptIndex: number, stated: number | null, base: number[], tuned: number[], parent: number[] | null = null): EvaluationRecord => {
    const r = record(
      promptIndex,
      'circle',
      base.map(() => 20),
      tuned.map(() => 20),
      base.map(() => true),
      parent?.map(() => 20) ?? null,
    );
    const withInstances = (scores: readonly EvaluationScore[], instances: number[]) => scores.map((score, s) => ({ ...score, instances: instances[s]! }));
    return {
      ...r,
      statedCount: stated,
      base: withInstances(r.base, base),
      tuned: withInstances(r.tuned, tuned),
      parent: r.parent === null || parent === null ? null : withInstances(r.parent, parent),
    };
  };

  it('is the share of images whose instance count is the stated one, over prompts that state a count', () => {
    // Stated 3: the base counts right in 1 of 4 images, the tuned in 3 of 4; prompt 2 states no count and is left out.
    const records = [counted(0, 3, [3, 2], [3, 3]), counted(1, 3, [1, 1], [3, 1]), counted(2, null, [5, 5], [1, 1])];
    const figures = evaluationFigures(records, 0.5, 500);
    expect(figures.countAccuracyBase).toBe(0.25);
    expect(figures.countAccuracyTuned).toBe(0.75);
    // Each counted prompt gains 0.5 (one seed of its two): every resample gains 0.5.
    expect(figures.countGainInterval).toEqual([0.5, 0.5]);
    expect(figures.pairs).toBe(6);
  });

  it('bootstraps the gain over prompts as the accuracy gain: resamples gain 0, 0.5 or 1', () => {
    // One seed each: prompt 0 gains (2 instances -> 1), prompt 1 does not (right on both sides).
    const figures = evaluationFigures([counted(0, 1, [2], [1]), counted(1, 1, [1], [1])], 0.5, 2000);
    expect([figures.countAccuracyBase, figures.countAccuracyTuned]).toEqual([0.5, 1]);
    expect(figures.countGainInterval).toEqual([0, 1]);
    // The same hits as detections give the same interval: one computation for both.
    const detections = evaluationFigures([record(0, 'circle', [1], [1], [false]), record(1, 'circle', [1], [1], [true])], 0.5, 2000);
    expect(figures.countGainInterval).toEqual(detections.accuracyGainInterval);
  });

  it('is computed against the parent as well', () => {
    // Stated 2: the parent counts prompt 0 right and the tuned prompt 1, the base neither.
    const figures = evaluationFigures([counted(0, 2, [0], [1], [2]), counted(1, 2, [0], [2], [0])], 0.5, 2000);
    expect(figures).toMatchObject({ countAccuracyBase: 0, countAccuracyTuned: 0.5 });
    expect(figures.parent).toMatchObject({ countAccuracyBase: 0.5, countAccuracyTuned: 0.5 });
    // Resamples gain -1 (prompt 0 twice, a quarter of them), 0 or +1 (a quarter).
    expect(figures.parent?.countGainInterval).toEqual([-1, 1]);
  });

  it('is null when no held-out prompt states a count, and for records of earlier versions (even some)', () => {
    const none = { countAccuracyBase: null, countAccuracyTuned: null, countGainInterval: null };
    expect(evaluationFigures([counted(0, null, [1], [1])], 0.5, 100)).toMatchObject(none);
    const older = record(1, 'circle', [20], [20], [true]);
    expect(evaluationFigures([counted(0, 1, [1], [1]), older], 0.5, 100)).toMatchObject(none);
    const { instances: _, ...unCounted } = counted(0, 1, [1], [1]).tuned[0]!;
    expect(evaluationFigures([{ ...counted(0, 1, [1], [1]), tuned: [unCounted] }], 0.5, 100)).toMatchObject(none);
  });

  it('reads results of earlier versions with the counting figures null', () => {
    const { countAccuracyBase: _b, countAccuracyTuned: _t, countGainInterval: _g, ...old } = evaluationFigures([counted(0, 1, [1], [1])], 0.5, 100);
    expect(currentEvaluation({ manifest: 'm', ...old })).toMatchObject({ countAccuracyBase: null, countAccuracyTuned: null, countGainInterval: null });
  });
});

describe('evaluationFigures: the referee', () => {
  it('is null without a referee, and reads results of earlier versions, against the base and the parent, with it null', () => {
    const figures = evaluationFigures([record(0, 'circle', [20], [20], [true])], 0.5, 100);
    expect(figures.referee).toBeNull();
    const { referee: _, ...old } = figures;
    const parent = { ...old };
    expect(currentEvaluation({ manifest: 'm', ...old, parent })).toMatchObject({ referee: null, parent: { referee: null } });
  });
});

describe('report page', () => {
  it('bins values into a histogram', () => {
    const svg = histogramSvg([0, 0.05, 0.95, 1], 'detection');
    expect(svg.match(/<rect/g)).toHaveLength(10);
    expect(svg).toContain('0.0-0.1: 2');
    expect(svg).toContain('0.9-1.0: 2');
  });

  it('shows the headline and escapes what users wrote', () => {
    const input = roundInputWith();
    const scores: PromptScores[] = [
      {
        promptIndex: 0,
        className: 'circle',
        text: 'a <b>red</b> circle',
        images: [{ key: 'k0', seed: 0, detection: 0.8, instances: 1, countMatches: null, caption: 'a red circle', checklist: 3, clip: 30, combined: 0.7 }],
      },
    ];
    const html = reportHtml(
      {
        page: 'r/report.html',
        run: { workflowId: 'wf', runId: 'run-2', resetFrom: 'run-1' },
        input,
        gate: { passed: false, reasons: ['win rate against the parent 40.0%: not enough'] },
        scores,
        curation: { manifest: 'm', dataset: 'd/', kept: 1, included: 0, dropped: 0, perClass: { circle: { kept: 1, dropped: 0, reasons: {} } } },
        training: { manifest: 'm', lora: 'l/', steps: 10, finalLoss: 0.1 },
        lossCurve: { losses: [0.3, 0.2, 0.1] },
        evaluation: { manifest: 'm', ...evaluationFigures([record(0, 'circle', [20], [25], [true])], 0.5, 100) },
        evaluationRecords: [record(0, 'circle', [20], [25], [true])],
      },
      8,
    );
    expect(html).toContain('Tuned beats base in <b>100.0%</b> of 1 paired samples');
    expect(html).toContain('a &#60;b&#62;red&#60;/b&#62; circle');
    expect(html).not.toContain('<b>red</b>');
    // Images are links relative to the page, never inlined.
    expect(html).toContain('<img src="../k0"');
    expect(html).not.toContain('data:image');
    expect(html).toContain('a reset of run <code>run-1</code>');
    expect(html).toContain('Promotion gate: not passed');
    expect(html).toContain('win rate against the parent 40.0%: not enough');
    // One seed per prompt: a gain with a (degenerate) interval, and no diversity.
    expect(html).toContain('Accuracy gain +0.0 points (95% interval +0.0 to +0.0)');
    expect(html).toContain('Diversity: not measured (it needs two or more held-out seeds per prompt).');
    expect(html).toContain(humanReviewSection(null));
  });
});

describe("the report's human-review section", () => {
  const figures = { votes: 10, tuned: 5, base: 2, same: 3, winRate: 0.65, winRateInterval: [0.4, 0.85] as const };

  it('says how to collect votes until there are some, then shows their figures', () => {
    expect(humanReviewSection(null)).toContain('No votes yet');
    const section = humanReviewSection(figures);
    expect(section).toContain('People prefer tuned in <b>65.0%</b> of 10 votes (95% interval 40.0% – 85.0%)');
    expect(section).toContain('Tuned 5, base 2, same 3');
  });

  it('replaces the section and leaves the rest of the page as it was', () => {
    const page = `<html><body><h1>r</h1>${humanReviewSection(null)}<h2>Configuration</h2></body></html>`;
    const updated = withHumanReviewSection(page, humanReviewSection(figures));
    expect(updated).toBe(`<html><body><h1>r</h1>${humanReviewSection(figures)}<h2>Configuration</h2></body></html>`);
    expect(withHumanReviewSection(updated, humanReviewSection(figures))).toBe(updated);
  });

  it('is added before the end of a report written without one', () => {
    expect(withHumanReviewSection('<body><p>x</p></body>', '<h2>Human review</h2>')).toBe('<body><p>x</p><h2>Human review</h2>\n</body>');
  });
});
