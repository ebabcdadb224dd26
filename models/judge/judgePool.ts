import { existsSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';

import type { RawImage } from '@huggingface/transformers';

import type { JudgeCall } from '../laneServices.js';
import { Lanes, contiguousParts, defaultLanes, folderBytes, laneThreads } from '../lanes.js';
import type { JudgeConfig, RefereeConfig } from './config.js';
import { verdictOf, type Judgement, type Verdict } from './judge.js';
import type { RefereeVerdict } from './refereeChecks.js';

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
    const { lanes, threads } = await lanesFor(config, [config.detector, config.captioner, config.clip], options.lanes);
    return new JudgePool(config, await Lanes.start({ service: 'judge', options: { ...config, threads } }, lanes));
  }

  get laneCount(): number {
    return this.lanes.count;
  }

  /** Judges a prompt's images and picks the one the paper's rule keeps, as Judge.judge() does. */
  async judge(prompt: string, className: string, images: readonly RawImage[]): Promise<Verdict> {
    const judgements: Judgement[] = await acrossLanes(this.lanes, prompt, className, images);
    return verdictOf(judgements, this.config.threshold);
  }

  async release(): Promise<void> {
    await this.lanes.release();
  }
}

/** The referee in lanes, as JudgePool holds the judge: each image's verdict is its own. */
export class RefereePool {
  private constructor(private readonly lanes: Lanes<'referee'>) {}

  static async load(config: RefereeConfig, options: { readonly lanes?: number } = {}): Promise<RefereePool> {
    const { lanes, threads } = await lanesFor(config, [config.detector, config.clip], options.lanes);
    return new RefereePool(await Lanes.start({ service: 'referee', options: { ...config, threads } }, lanes));
  }

  get laneCount(): number {
    return this.lanes.count;
  }

  /** Referee.grade() over the lanes: the verdict on each image of one prompt of `className`. */
  grade(prompt: string, className: string, images: readonly RawImage[]): Promise<RefereeVerdict[]> {
    return acrossLanes(this.lanes, prompt, className, images);
  }

  async release(): Promise<void> {
    await this.lanes.release();
  }
}

/** Lanes and threads per lane for models in these folders (a hub id, not a folder, counts nothing). */
async function lanesFor(config: { readonly device: string; readonly threads: number | null }, folders: readonly (string | null)[], asked: number | undefined) {
  const local = folders.filter((f): f is string => f !== null && existsSync(f));
  const lanes = asked ?? defaultLanes(config.device, config.threads ?? availableParallelism(), await folderBytes(local), totalmem());
  return { lanes, threads: laneThreads({ lanes, ...(config.threads === null ? {} : { threads: config.threads }) }) };
}

/** One prompt's images in contiguous parts, one per lane, and the lanes' per-image results joined in order. */
async function acrossLanes<S extends 'judge' | 'referee'>(
  lanes: Lanes<S>,
  prompt: string,
  className: string,
  images: readonly RawImage[],
): Promise<Awaited<ReturnType<Lanes<S>['call']>>> {
  const calls = contiguousParts(images.length, lanes.count).map(([start, end]) => {
    const mine: JudgeCall['images'] = images.slice(start, end).map(({ data, width, height, channels }) => ({ data, width, height, channels }));
    return lanes.call({ prompt, className, images: mine });
  });
  const results = await Promise.allSettled(calls);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.flatMap((r) => (r as PromiseFulfilledResult<unknown[]>).value) as Awaited<ReturnType<Lanes<S>['call']>>;
}
