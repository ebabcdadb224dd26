import type { RawImage } from '@huggingface/transformers';

import type { JudgeCall } from '../laneServices.js';
import { Lanes, contiguousParts, planLanes } from '../lanes.js';
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
    const { lanes, threads } = await planLanes({ ...config, folders: [config.detector, config.captioner, config.clip], ...options });
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
    const { lanes, threads } = await planLanes({ ...config, folders: [config.detector, config.clip], ...options });
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

/** One prompt's images in contiguous parts, one per lane, and the lanes' per-image results joined in order. */
async function acrossLanes<S extends 'judge' | 'referee'>(
  lanes: Lanes<S>,
  prompt: string,
  className: string,
  images: readonly RawImage[],
): Promise<Awaited<ReturnType<Lanes<S>['call']>>> {
  const parts = contiguousParts(images.length, lanes.count).map(([start, end]): JudgeCall => ({
    prompt,
    className,
    images: images.slice(start, end).map(({ data, width, height, channels }) => ({ data, width, height, channels })),
  }));
  return (await lanes.callEach(parts)).flat() as Awaited<ReturnType<Lanes<S>['call']>>;
}
