/**
 * The referee: a judge that grades the evaluation's images and never curates, so what the
 * curation judge was trained against cannot grade its own pupil alone. Its detector comes from
 * the same registry as the judge's (any family), its CLIP is the judge's CLIP encoder; the
 * checks themselves are the pure rules of refereeChecks.ts.
 */
import type { RawImage } from '@huggingface/transformers';
import { ModelInputError, ModelLayoutError, UnknownClassError } from '../errors.js';
import type { RefereeConfig } from './config.js';
import { checkClipFolder, loadClip, type ClipEncoder } from './clip.js';
import { checkDetectorClasses, checkDetectorFolder, loadDetector, type ClassDetector } from './detector.js';
import { backgroundQuery, bestBox, colourQuery, promptAttributes, refereeVerdict, zeroShot, type RefereeVerdict } from './refereeChecks.js';
import { statedCount } from './text.js';

/** The referee's detector field, as errors name it. */
export const REFEREE_DETECTOR_FIELD = 'evaluation.referee.detector';

/** The same error, its message led by the input field it is about. */
function naming(field: string, run: () => void): void {
  try {
    run();
  } catch (error) {
    if (error instanceof UnknownClassError) throw new UnknownClassError(`${field}: ${error.message}`, { cause: error });
    if (error instanceof ModelLayoutError) throw new ModelLayoutError(`${field}: ${error.message}`, { cause: error });
    throw error;
  }
}

async function inBatches<T, R>(items: readonly T[], size: number, run: (batch: T[]) => Promise<R[]>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await run(items.slice(i, i + size))));
  return out;
}

export class Referee {
  private constructor(
    readonly config: RefereeConfig,
    private readonly detector: ClassDetector,
    private readonly clip: ClipEncoder,
  ) {}

  /** Checks the folders' layouts without loading a model; errors name `evaluation.referee.detector` or `.clip`. */
  static checkFolders(config: RefereeConfig): void {
    naming(REFEREE_DETECTOR_FIELD, () => checkDetectorFolder(config.detector));
    naming('evaluation.referee.clip', () => checkClipFolder(config.clip));
  }

  /** Checks, without loading it, that the referee's detector can be asked about each class (a closed vocabulary must have it as a label). */
  static checkClasses(config: RefereeConfig, classes: readonly string[]): void {
    naming(REFEREE_DETECTOR_FIELD, () => checkDetectorClasses(config.detector, classes, config.synonyms));
  }

  static async load(config: RefereeConfig): Promise<Referee> {
    const source = (folder: string) => ({ folder, device: config.device, allowRemoteModels: false, threads: config.threads });
    return new Referee(config, await loadDetector(source(config.detector)), await loadClip(source(config.clip)));
  }

  /** The referee's verdict on each image of one prompt of `className`. */
  async grade(prompt: string, className: string, images: readonly RawImage[]): Promise<RefereeVerdict[]> {
    if (prompt.trim() === '') throw new ModelInputError('referee: prompt must be a non-empty string');
    const { batchSize, colours, backgrounds } = this.config;
    const synonyms = this.config.synonyms[className.toLowerCase()] ?? [];
    const wanted = promptAttributes(prompt, className, synonyms, colours, backgrounds);
    const stated = statedCount(prompt, className, synonyms);
    const candidates = await inBatches(images, batchSize, (batch) => this.detector.candidates(batch, className, synonyms));

    // Colour: CLIP on the crop of the class's best box, among the vocabulary's colours.
    const pickedColours: Array<string | null> = images.map(() => null);
    if (wanted.colour !== null) {
      const boxes = candidates.map((c) => bestBox(c, this.config.presenceThreshold));
      const texts = await this.clip.texts(colours.map((c) => colourQuery(c, className)));
      const cropped = await Promise.all(
        boxes.map(async (b, i) => {
          if (b === null) return null;
          const image = images[i]!;
          // At least one pixel, inside the image: a degenerate box would make an empty crop.
          const xmin = Math.max(0, Math.min(image.width - 1, Math.floor(b.xmin)));
          const ymin = Math.max(0, Math.min(image.height - 1, Math.floor(b.ymin)));
          const xmax = Math.max(xmin, Math.min(image.width - 1, Math.ceil(b.xmax)));
          const ymax = Math.max(ymin, Math.min(image.height - 1, Math.ceil(b.ymax)));
          return (await image.crop([xmin, ymin, xmax, ymax])) as RawImage;
        }),
      );
      const present = cropped.flatMap((c, i) => (c === null ? [] : [{ c, i }]));
      const embeddings = await inBatches(present, batchSize, (batch) => this.clip.images(batch.map((p) => p.c)));
      present.forEach((p, k) => (pickedColours[p.i] = zeroShot(embeddings[k]!, texts, colours)));
    }

    // Background: CLIP on the whole image, among the vocabulary's backgrounds.
    let pickedBackgrounds: Array<string | null> = images.map(() => null);
    if (wanted.background !== null) {
      const texts = await this.clip.texts(backgrounds.map(backgroundQuery));
      const embeddings = await inBatches(images, batchSize, (batch) => this.clip.images(batch));
      pickedBackgrounds = embeddings.map((e) => zeroShot(e, texts, backgrounds));
    }

    return candidates.map((c, i) =>
      refereeVerdict({ candidates: c, statedCount: stated, wanted, pickedColour: pickedColours[i]!, pickedBackground: pickedBackgrounds[i]! }, this.config),
    );
  }
}
