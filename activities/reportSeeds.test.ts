import { describe, expect, it } from 'vitest';

import { roundSummary } from '../cli/progress.js';
import type { CurateResult, TrainResult } from '../contract/activities.js';
import { loraSeedsFigures } from '../contract/seeds.js';
import type { RoundResult } from '../contract/workflows.js';
import { seedsSection } from './reportSeeds.js';
import { finalLoss } from './trainerMetrics.js';

const curation: CurateResult = { manifest: 'd.json', dataset: 'd/', kept: 10, included: 0, dropped: 0, perClass: {}, withheld: { prompts: 2, images: 16 } };
const validation = (seed: number, accuracyTuned: number, winRate: number) => ({
  manifest: `v/seed-${seed}.json`,
  seed,
  lora: `runs/r/seeds/seed-${seed}/lora/`,
  prompts: 2,
  pairs: 8,
  accuracyBase: 0.5,
  accuracyTuned,
  winRate,
  finalLoss: seed === 1 ? null : 0.0123,
});
const seeds = loraSeedsFigures([validation(0, 0.625, 0.6), validation(1, 0.75, 0.55)]);
const training: TrainResult = { manifest: 'l.json', lora: 'runs/r/seeds/seed-1/lora/', steps: 5, finalLoss: null, seed: 1, seeds };

describe("the report's section on several LoRAs", () => {
  it('lists each trainer seed with its validation figures, marks the kept one and gives the spread', () => {
    const html = seedsSection(training, curation);
    expect(html).toContain('<h2>LoRAs by trainer seed</h2>');
    expect(html).toContain('compared on 2 training prompts withheld from their training (16 of their images left out of the dataset), 8 images per side');
    expect(html).toContain('<tr><td>0</td><td>62.5%</td><td>+12.5</td><td>60.0%</td><td>0.0123</td><td></td>');
    expect(html).toContain('<tr class="kept"><td>1</td><td>75.0%</td><td>+25.0</td><td>55.0%</td><td>–</td><td><b>kept</b></td>');
    expect(html).toContain('min +12.5, max +25.0, mean +18.8, standard deviation 8.8 points');
  });

  it('is absent for a round of one LoRA', () => {
    const { seeds: _seeds, seed: _seed, ...one } = training;
    expect(seedsSection(one, curation)).toBe('');
  });

  it('shows in the CLI summary', () => {
    const result = {
      round: 1,
      dataset: curation,
      training,
      evaluation: {
        pairs: 4,
        winRate: 0.5,
        winRateInterval: [0.4, 0.6],
        signTestP: 1,
        meanClipBase: 20,
        meanClipTuned: 20,
        accuracyBase: 0.5,
        accuracyTuned: 0.5,
        parent: null,
      },
      report: { report: 'r.html', location: '/r.html' },
    } as unknown as RoundResult;
    const text = roundSummary(result);
    expect(text).toContain(
      '2 LoRAs by trainer seed, on 2 withheld training prompts (8 images each): kept seed 1; validation accuracy gain +12.5 to +25.0 points, mean +18.8, sd 8.8',
    );
    expect(text).toContain('    seed 0: accuracy 62.5% (+12.5 points), win rate 60.0%, final loss 0.0123');
    expect(text).toContain('    seed 1 (kept): accuracy 75.0% (+25.0 points), win rate 55.0%, final loss -');
  });
});

describe("the trainer's final loss", () => {
  it("reads metrics.json's final_loss, or null", () => {
    expect(finalLoss(JSON.stringify({ final_loss: 0.25, loss_curve: [0.3] }))).toBe(0.25);
    expect(finalLoss(JSON.stringify({ final_loss: null }))).toBeNull();
    expect(finalLoss('{"final_loss": NaN}')).toBeNull();
    expect(finalLoss(null)).toBeNull();
  });
});
