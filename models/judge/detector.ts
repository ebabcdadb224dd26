/**
 * The detector families and their registry: config.json's `model_type` picks the family, as
 * transformers.js maps model types to classes, and the family's loader reads the folder layout.
 */
import {
  AutoConfig,
  AutoImageProcessor,
  AutoModelForObjectDetection,
  AutoModelForZeroShotObjectDetection,
  type RawImage,
  type Tensor,
} from '@huggingface/transformers';
import { ModelLayoutError, UnknownClassError } from '../errors.js';
import type { Candidate } from './boxes.js';
import { loadOptions, onDevice, type LoadOptions } from './device.js';
import { readModelConfig, requireFiles, TOKENIZER_FILES, type ModelConfig } from './layout.js';
import { words } from './text.js';
import { floats, isHubId, imageProcessor, tokenizer, type ImageProcessor, type ModelSource, type Runnable } from './transformers.js';

interface Grounded {
  post_process_grounded_object_detection(
    outputs: Record<string, Tensor>,
    inputIds: Tensor,
    options: { box_threshold: number; text_threshold: number; target_sizes: Array<[number, number]> },
  ): Array<{ scores: number[]; boxes: number[][] }>;
}
interface ClosedVocabulary {
  post_process_object_detection(
    outputs: Record<string, Tensor>,
    threshold: number,
    targetSizes: Array<[number, number]>,
  ): Array<{ scores: number[]; boxes: number[][]; classes: number[] }>;
}

function sizes(images: readonly RawImage[]): Array<[number, number]> {
  return images.map((image) => [image.height, image.width]);
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function box([xmin = 0, ymin = 0, xmax = 0, ymax = 0]: readonly number[]): Candidate['box'] {
  return { xmin, ymin, xmax, ymax };
}

/** Label equality after the same word normalisation the caption checks use. */
function sameName(a: string, b: string): boolean {
  return words(a).join(' ') === words(b).join(' ');
}

export interface ClassDetector {
  /** Every proposal for the class in each image, with boxes in the image's pixels. */
  candidates(images: RawImage[], className: string, synonyms: readonly string[]): Promise<Candidate[][]>;
}

interface DetectorFamily {
  readonly files: readonly string[];
  load(source: ModelSource, options: LoadOptions, config: ModelConfig | null): Promise<ClassDetector>;
}

/** OWL-ViT and OWLv2: one text query per image, one sigmoid score and box per image patch. */
const openVocabulary: DetectorFamily = {
  files: ['preprocessor_config.json', ...TOKENIZER_FILES, 'onnx/model.onnx'],
  async load(source, options) {
    const model = (await AutoModelForZeroShotObjectDetection.from_pretrained(source.folder, options)) as unknown as Runnable;
    const pixels = await imageProcessor(source.folder, options);
    const tokens = await tokenizer(source.folder, options);
    return {
      async candidates(images, className) {
        // The model splits its text batch evenly over the image batch: one copy of the query per image.
        const text = tokens(
          images.map(() => className),
          { padding: true, truncation: true },
        );
        const output = await model({ ...text, pixel_values: (await pixels(images)).pixel_values });
        const logits = floats(output['logits'], 'logits');
        const boxes = floats(output['pred_boxes'], 'pred_boxes');
        const [, patches = 0, queries = 0] = logits.dims;
        return images.map((image, b) =>
          Array.from({ length: patches }, (_, p) => {
            const [cx = 0, cy = 0, w = 0, h = 0] = boxes.data.subarray((b * patches + p) * 4, (b * patches + p) * 4 + 4);
            return {
              score: sigmoid(logits.data[(b * patches + p) * queries]!),
              box: box([(cx - w / 2) * image.width, (cy - h / 2) * image.height, (cx + w / 2) * image.width, (cy + h / 2) * image.height]),
            };
          }),
        );
      },
    };
  },
};

/** Grounding DINO: the class as a period-terminated phrase, scored by its best-matching token. */
const grounded: DetectorFamily = {
  files: ['preprocessor_config.json', ...TOKENIZER_FILES, 'onnx/model.onnx'],
  async load(source, options) {
    const model = (await AutoModelForZeroShotObjectDetection.from_pretrained(source.folder, options)) as unknown as Runnable;
    const processor = (await AutoImageProcessor.from_pretrained(source.folder, options)) as unknown as ImageProcessor & Grounded;
    const tokens = await tokenizer(source.folder, options);
    return {
      async candidates(images, className) {
        const text = tokens(
          images.map(() => `${words(className).join(' ')}.`),
          { padding: true, truncation: true },
        );
        const { pixel_values, pixel_mask } = await processor(images);
        const output = await model({ ...text, pixel_values, pixel_mask });
        const found = processor.post_process_grounded_object_detection(output, text.input_ids, {
          box_threshold: 0,
          text_threshold: 0,
          target_sizes: sizes(images),
        });
        return found.map(({ scores, boxes }) => scores.map((score, i) => ({ score, box: box(boxes[i] ?? []) })));
      },
    };
  },
};

/** The label ids a closed-vocabulary detector reports a class (or one of its synonyms) as; UnknownClassError when none. */
function labelIds(labels: Readonly<Record<string, string>>, className: string, synonyms: readonly string[], folder: string): Set<number> {
  const names = [className, ...synonyms];
  const ids = new Set(
    Object.entries(labels)
      .filter(([, label]) => names.some((n) => sameName(label, n)))
      .map(([id]) => Number(id)),
  );
  if (ids.size === 0) {
    throw new UnknownClassError(
      `class "${className}" is not a label of the detector in ${folder} (config.json id2label: ${Object.values(labels).join(', ')}); add a synonym that is`,
    );
  }
  return ids;
}

/** DETR, RT-DETR, D-FINE, YOLOS: a fixed label set (config.json id2label); proposals labelled with the class. */
const closedVocabulary: DetectorFamily = {
  files: ['preprocessor_config.json', 'onnx/model.onnx'],
  async load(source, options, config) {
    const labels = config?.id2label ?? null;
    if (labels === null || Object.keys(labels).length === 0) {
      throw new ModelLayoutError(`${source.folder}/config.json has no id2label; a closed-vocabulary detector needs its label names`);
    }
    const model = (await AutoModelForObjectDetection.from_pretrained(source.folder, options)) as unknown as Runnable;
    const processor = (await AutoImageProcessor.from_pretrained(source.folder, options)) as unknown as ImageProcessor & ClosedVocabulary;
    return {
      async candidates(images, className, synonyms) {
        const ids = labelIds(labels, className, synonyms, source.folder);
        const { pixel_values, pixel_mask } = await processor(images);
        const output = await model({ pixel_values, pixel_mask });
        return processor
          .post_process_object_detection(output, 0, sizes(images))
          .map(({ scores, boxes, classes }) => scores.flatMap((score, i) => (ids.has(classes[i]!) ? [{ score, box: box(boxes[i] ?? []) }] : [])));
      },
    };
  },
};

/** The detector families by config.json `model_type`, as transformers.js maps model types to classes. */
export const DETECTORS: Readonly<Record<string, DetectorFamily>> = {
  owlvit: openVocabulary,
  owlv2: openVocabulary,
  'grounding-dino': grounded,
  detr: closedVocabulary,
  rt_detr: closedVocabulary,
  rt_detr_v2: closedVocabulary,
  d_fine: closedVocabulary,
  yolos: closedVocabulary,
};

/** Reads the folder's config.json and files, then loads the detector its model type names. */
export async function loadDetector(source: ModelSource): Promise<ClassDetector> {
  const options = loadOptions(source.device, source.allowRemoteModels, source.threads);
  if (isHubId(source)) {
    return onDevice(source.device, `detector ${source.folder}`, async () => {
      const { model_type } = (await AutoConfig.from_pretrained(source.folder, options)) as unknown as { model_type: string };
      return familyOf(model_type, source.folder).load(source, options, null);
    });
  }
  const { config, family } = checkDetectorFolder(source.folder);
  return onDevice(source.device, `detector ${source.folder}`, () => family.load(source, options, config));
}

/** Checks, without loading it, that a detector can be asked about each class: any class for an open-vocabulary one, a label (or a synonym's) for a closed one. */
export function checkDetectorClasses(folder: string, classes: readonly string[], synonyms: Readonly<Record<string, readonly string[]>>): void {
  const { config, family } = checkDetectorFolder(folder);
  if (family !== closedVocabulary || config.id2label === null) return;
  for (const className of classes) labelIds(config.id2label, className, synonyms[className.toLowerCase()] ?? [], folder);
}

/** Checks a detector folder's layout without loading it: a supported model type and its family's files. */
export function checkDetectorFolder(folder: string): { readonly config: ModelConfig; readonly family: DetectorFamily } {
  const config = readModelConfig(folder);
  const family = familyOf(config.modelType, folder);
  requireFiles(folder, family.files, `${config.modelType} detector`);
  return { config, family };
}

function familyOf(modelType: string, folder: string): DetectorFamily {
  const family = DETECTORS[modelType];
  if (family === undefined) {
    throw new ModelLayoutError(
      `${folder}/config.json: model_type "${modelType}" is not a supported detector; expected one of ${Object.keys(DETECTORS).join(', ')}`,
    );
  }
  return family;
}
