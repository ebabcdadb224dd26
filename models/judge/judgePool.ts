import { existsSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';

import type { RawImage } from '@huggingface/transformers';

import { Lanes, contiguousParts, defaultLanes, folderBytes, laneThreads } from '../lanes.js';
import type { JudgeConfig } from './config.js';
import { verdictOf, type Judgement, type Verdict } from './judge.js';

/**
 * The judge loaded in lanes (../lanes.ts), each with its own sessions and a share of the
 * config's threads. A prompt's images are split between the lanes and judged side by side;
 * each image's judgement is its own, so the verdict is the one a single Judge gives.
 */
export class JudgePool {
  private constructor(
    readonly config: JudgeConfig,
    private readonly lanes: Lanes<'judge'>,
  ) {}

  /** `config.threads` is the whole pool's; `lanes`: default defaultLanes() for its device and the models' size. */
  static async load(config: JudgeConfig, options: { readonly lanes?: number } = {}): Promise<JudgePool> {
    const folders = [config.detector, config.captioner, config.clip].filter((f): f is string => f !== null && existsSync(f));
    const cores = config.threads ?? availableParallelism();
    const lanes = options.lanes ?? defaultLanes(config.device, cores, await folderBytes(folders), totalmem());
    const threads = laneThreads({ lanes, ...(config.threads === null ? {} : { threads: config.threads }) });
    return new JudgePool(config, await Lanes.start({ service: 'judge', options: { ...config, threads } }, lanes));
  }

  get laneCount(): number {
    return this.lanes.count;
  }

  /** Judges a prompt's images and picks the one the paper's rule keeps, as Judge.judge() does. */
  async judge(prompt: string, className: string, images: readonly RawImage[]): Promise<Verdict> {
    const calls = contiguousParts(images.length, this.lanes.count).map(([start, end], part) => {
      const mine = images.slice(start, end).map(({ data, width, height, channels }) => ({ data, width, height, channels }));
      return this.lanes.call(part, { prompt, className, images: mine });
    });
    const results = await Promise.allSettled(calls);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return verdictOf(
      results.flatMap((r) => (r as PromiseFulfilledResult<Judgement[]>).value),
      this.config.threshold,
    );
  }

  async release(): Promise<void> {
    await this.lanes.release();
  }
}
