/**
 * The class-conditional judge: for one prompt and its class, scores a set of images with the
 * detector, the captioner and CLIP (each optional but the detector), `batchSize` images per model call.
 */
import type { RawImage } from '@huggingface/transformers';
import { ModelInputError } from '../errors.js';
import type { JudgeConfig } from './config.js';
import { checkCaptionerFolder, loadCaptioner, type Captioner } from './captioner.js';
import { checkClipFolder, loadClip, type ClipEncoder } from './clip.js';
import { checkDetectorClasses, checkDetectorFolder, loadDetector, type ClassDetector } from './detector.js';
import {
  checkCaption,
  checklist,
  clipScore100,
  clipScoreHessel,
  combinedScore,
  cosine,
  select,
  summariseDetection,
  unitVector,
  type CaptionCheck,
  type Detection,
} from './scores.js';

export interface Judgement {
  readonly detection: Detection;
  readonly caption: CaptionCheck | null;
  /** Checklist points (0-3) from the caption; 0 without a captioner. */
  readonly checklist: number;
  /**
   * Image–prompt agreement, and the image's CLIP embedding scaled to unit length (what the
   * evaluation's diversity compares images of one prompt with).
   */
  readonly clip: { readonly cosine: number; readonly score100: number; readonly hessel: number; readonly embedding: Float32Array } | null;
  readonly combined: number;
}

export interface Verdict {
  readonly judgements: readonly Judgement[];
  /** Index of the image the paper's rule keeps, or null when the prompt is dropped. */
  readonly selected: number | null;
}

function batches<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function batched<T, R>(items: readonly T[], size: number, run: (batch: T[]) => Promise<R[]>): Promise<R[]> {
  const out: R[] = [];
  for (const batch of batches(items, size)) out.push(...(await run(batch)));
  return out;
}

export class Judge {
  private constructor(
    readonly config: JudgeConfig,
    private readonly detector: ClassDetector,
    private readonly captioner: Captioner | null,
    private readonly clip: ClipEncoder | null,
  ) {}

  /** Loads the configured models; pass a config checked by `validateJudgeConfig`. */
  /** Checks the configured folders' layouts (files, a supported detector) without loading a model: seconds before a round, not after its sampling. */
  static checkFolders(config: JudgeConfig): void {
    if (config.allowRemoteModels) return;
    checkDetectorFolder(config.detector);
    if (config.captioner !== null) checkCaptionerFolder(config.captioner);
    if (config.clip !== null) checkClipFolder(config.clip);
  }

  /** Checks, without loading a model, that the detector can be asked about each class. */
  static checkClasses(config: JudgeConfig, classes: readonly string[]): void {
    if (!config.allowRemoteModels) checkDetectorClasses(config.detector, classes, config.synonyms);
  }

  static async load(config: JudgeConfig): Promise<Judge> {
    const source = (folder: string) => ({ folder, device: config.device, allowRemoteModels: config.allowRemoteModels, threads: config.threads });
    return new Judge(
      config,
      await loadDetector(source(config.detector)),
      config.captioner === null ? null : await loadCaptioner(source(config.captioner)),
      config.clip === null ? null : await loadClip(source(config.clip)),
    );
  }

  /** Judges a prompt's images and picks the one the paper's rule keeps. */
  async judge(prompt: string, className: string, images: readonly RawImage[]): Promise<Verdict> {
    return verdictOf(await this.judgeImages(prompt, className, images), this.config.threshold);
  }

  /** Each image's judgement on its own: images of one prompt may be judged in parts and the parts joined. */
  async judgeImages(prompt: string, className: string, images: readonly RawImage[]): Promise<Judgement[]> {
    if (prompt.trim() === '') throw new ModelInputError('judge: prompt must be a non-empty string');
    if (className.trim() === '') throw new ModelInputError('judge: className must be a non-empty string');
    const { batchSize, threshold, iouThreshold, weights, attributes } = this.config;
    const synonyms = this.config.synonyms[className.toLowerCase()] ?? [];

    const candidates = await batched(images, batchSize, (batch) => this.detector.candidates(batch, className, synonyms));
    const captioner = this.captioner;
    const captions = captioner === null ? null : await batched(images, batchSize, (batch) => captioner.caption(batch));
    const clip = this.clip;
    const clipped =
      clip === null
        ? null
        : await (async () => {
            const [text] = await clip.texts([prompt]);
            const embeddings = await batched(images, batchSize, (batch) => clip.images(batch));
            return embeddings.map((e) => ({ cosine: cosine(e, text!), embedding: unitVector(e) }));
          })();

    return images.map((_, i): Judgement => {
      const detection = summariseDetection(candidates[i]!, prompt, className, synonyms, threshold, iouThreshold);
      const caption = captions === null ? null : checkCaption(captions[i]!, prompt, className, synonyms, attributes);
      const image = clipped === null ? null : clipped[i]!;
      const clipCosine = image === null ? null : image.cosine;
      return {
        detection,
        caption,
        checklist: caption === null ? 0 : checklist(caption),
        clip:
          image === null
            ? null
            : { cosine: image.cosine, score100: clipScore100(image.cosine), hessel: clipScoreHessel(image.cosine), embedding: image.embedding },
        combined: combinedScore({ detection, caption, clipCosine }, weights),
      };
    });
  }
}

/** A prompt's verdict from its images' judgements: the image the paper's rule keeps, if any. */
export function verdictOf(judgements: readonly Judgement[], threshold: number): Verdict {
  return {
    judgements,
    selected: select(
      judgements.map((j) => ({ checklist: j.checklist, confidence: j.detection.confidence })),
      threshold,
    ),
  };
}
