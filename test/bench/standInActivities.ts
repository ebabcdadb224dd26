/**
 * A round's activities as stand-ins that take fixed times, for the fan-out benchmark: the real
 * workflows orchestrate them on real workers and a real server, and only the model work is a
 * wait (cancellable, heartbeating like the real activities).
 */
import { Context } from '@temporalio/activity';

import type { RoundActivities } from '../../contract/activities.js';
import { standInValidation } from '../activity.js';

/** Seconds each activity takes. */
export interface StandInDurations {
  readonly prepare: number;
  readonly sample: number;
  readonly judge: number;
  readonly curate: number;
  readonly train: number;
  readonly references: number;
  /** Each shard of the evaluation (the tuned generator's held-out images, judged). */
  readonly evaluateShard: number;
  /** The evaluation's figures, from the shards' records. */
  readonly evaluate: number;
  readonly report: number;
}

/** Waits `seconds`, heartbeating every second, as a model activity would. */
async function work(seconds: number): Promise<void> {
  const context = Context.current();
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    context.heartbeat();
    await context.sleep(Math.min(1000, until - Date.now()));
  }
}

export function standInActivities(d: StandInDurations): RoundActivities {
  return {
    prepareRound: async ({ root, input }) => {
      await work(d.prepare);
      const heldOut = input.evaluation.prompts;
      return { input: `${root}/input.json`, digest: '', classes: ['circle'], prompts: 1, heldOutPrompts: Array.isArray(heldOut) ? heldOut.length : 1 };
    },
    sampleShard: async ({ root, shard }) => {
      await work(d.sample);
      return { shard, manifest: `${root}/samples/shard-${shard}.json`, prompts: 1, images: 8, classes: ['circle'] };
    },
    judgeShard: async ({ root, shard }) => {
      await work(d.judge);
      return { shard, manifest: `${root}/scores/shard-${shard}.json`, images: 8, detected: 4 };
    },
    curateDataset: async ({ root, judged }) => {
      await work(d.curate);
      return { manifest: `${root}/dataset.json`, dataset: `${root}/dataset/`, kept: judged.length, included: 0, dropped: 0, perClass: {} };
    },
    trainLora: async ({ root }) => {
      await work(d.train);
      return { manifest: `${root}/lora.json`, lora: `${root}/lora/`, steps: 100, finalLoss: 0.1 };
    },
    // Training is one stand-in of fixed duration, however many workers it asks for.
    joinTraining: async () => ({ rank: null, workers: null }),
    sampleReferences: async () => {
      await work(d.references);
      return { images: 16 };
    },
    // Rounds of one LoRA (all the benchmark runs) never validate.
    sampleValidationBase: async () => ({ images: 0 }),
    validateLora: standInValidation,
    evaluateShard: async ({ shard }) => {
      await work(d.evaluateShard);
      return { shard, prompts: 1, images: 8 };
    },
    evaluateRound: async ({ root }) => {
      await work(d.evaluate);
      const figures = { pairs: 16, winRate: 0.6, winRateInterval: [0.5, 0.7] as const, meanClipBase: 25, meanClipTuned: 26, signTestP: 0.1, accuracyBase: 0.5 };
      const later = {
        accuracyGainInterval: [0, 0.2] as const,
        diversityBase: 0.3,
        diversityTuned: 0.3,
        diversityChange: 0,
        countAccuracyBase: null,
        countAccuracyTuned: null,
        countGainInterval: null,
        referee: null,
      };
      return { manifest: `${root}/evaluation.json`, ...figures, accuracyTuned: 0.6, ...later, perClass: {}, parent: null };
    },
    writeReport: async ({ root }) => {
      await work(d.report);
      return { report: `${root}/report.html`, location: `${root}/report.html` };
    },
  };
}
