/**
 * What a lane can load (lanes.ts): each service by name, with the options it is loaded with, the
 * call it answers, its result and the progress it reports on the way. The lane thread looks a
 * service up here; pools (SamplerPool, JudgePool, RefereePool) name the one they start.
 */
import { RawImage } from '@huggingface/transformers';

import { Generator, type GeneratorSource } from './generator.js';
import { Judge, type Judgement } from './judge/judge.js';
import type { JudgeConfig, RefereeConfig } from './judge/config.js';
import { Referee } from './judge/referee.js';
import type { RefereeVerdict } from './judge/refereeChecks.js';
import type { FloatTensor } from './onnx.js';
import { describeScheduler, sample, type RgbImage, type SampleRequest } from './sampler.js';

/** A prompt's images, or a part of them, for a judge or referee lane: pixels as transformers.js holds them. */
export interface JudgeCall {
  readonly prompt: string;
  readonly className: string;
  readonly images: readonly {
    readonly data: Uint8ClampedArray | Uint8Array;
    readonly width: number;
    readonly height: number;
    readonly channels: 1 | 2 | 3 | 4;
  }[];
}

/** Images, their final latents, and the scheduler that made them as PNG metadata names it. */
export interface PooledSample {
  readonly images: RgbImage[];
  readonly latents: FloatTensor;
  readonly scheduler: string;
}

export interface LaneServices {
  sampler: {
    options: { readonly source: GeneratorSource; readonly device: string; readonly threads: number | null };
    call: Omit<SampleRequest, 'onStep'>;
    result: PooledSample;
    progress: { readonly step: number; readonly steps: number };
  };
  judge: { options: JudgeConfig; call: JudgeCall; result: Judgement[]; progress: never };
  referee: { options: RefereeConfig; call: JudgeCall; result: RefereeVerdict[]; progress: never };
}

/** A service answering a prompt's images one result each; its model's sessions live as long as the thread. */
function perImage<R>(answer: (prompt: string, className: string, images: RawImage[]) => Promise<R[]>) {
  return {
    async call({ prompt, className, images }: JudgeCall) {
      const raw = images.map((image) => new RawImage(image.data, image.width, image.height, image.channels));
      return { result: await answer(prompt, className, raw), transfer: [] };
    },
    release: async () => undefined,
  };
}

/** A loaded service in a lane: a call's result, with the buffers to hand over instead of copying. */
export interface LoadedService<S extends keyof LaneServices> {
  call(
    payload: LaneServices[S]['call'],
    progress: (p: LaneServices[S]['progress']) => void,
  ): Promise<{ result: LaneServices[S]['result']; transfer: ArrayBuffer[] }>;
  release(): Promise<void>;
}

export const LANE_SERVICES: { [S in keyof LaneServices]: (options: LaneServices[S]['options']) => Promise<LoadedService<S>> } = {
  async sampler({ source, device, threads }) {
    const generator = await Generator.load(source, { device, ...(threads === null ? {} : { threads }) });
    return {
      async call(request, progress) {
        const result = await sample(generator, { ...request, onStep: (step, steps) => progress({ step, steps }) });
        return {
          result: { images: result.images, latents: result.latents, scheduler: describeScheduler(result.scheduler, request.scheduler) },
          transfer: [...new Set([...result.images.map((image) => image.data.buffer as ArrayBuffer), result.latents.data.buffer as ArrayBuffer])],
        };
      },
      release: () => generator.release(),
    };
  },

  async judge(config) {
    const judge = await Judge.load(config);
    return perImage((prompt, className, images) => judge.judgeImages(prompt, className, images));
  },

  async referee(config) {
    const referee = await Referee.load(config);
    return perImage((prompt, className, images) => referee.grade(prompt, className, images));
  },
};
