/**
 * The transformers.js glue the judge's loaders share. The judge's models are loaded with
 * transformers.js from local folders and run in batches (one model call per batch of images;
 * transformers.js' pipelines run one image per call). Outputs are read off the tensors by the
 * loaders and handed to the pure functions in scores.ts.
 */
import { AutoImageProcessor, AutoTokenizer, type RawImage, type Tensor } from '@huggingface/transformers';
import { ModelInterfaceError } from '../errors.js';
import type { Device } from '../onnx.js';
import type { LoadOptions } from './device.js';

/** What the judge needs of transformers.js objects; their published types are `any` at these points. */
type Inputs = Record<string, Tensor | undefined>;
export interface Runnable {
  (inputs: Inputs): Promise<Record<string, Tensor>>;
}
export interface Generator {
  generate(options: { inputs: Tensor }): Promise<Tensor>;
}
interface Pixels {
  readonly pixel_values: Tensor;
  readonly pixel_mask?: Tensor;
}
export interface ImageProcessor {
  (images: RawImage[]): Promise<Pixels>;
}
export interface Tokenizer {
  (texts: string[], options: { padding: boolean; truncation: boolean }): Record<'input_ids' | 'attention_mask', Tensor>;
  batch_decode(ids: Tensor, options: { skip_special_tokens: boolean }): string[];
}

export interface ModelSource {
  readonly folder: string;
  readonly device: Device;
  readonly allowRemoteModels: boolean;
  /** CPU threads per graph; null: onnxruntime's choice. */
  readonly threads: number | null;
}

/** With downloads allowed and no such local folder, the name is a hub id and the hub supplies the layout. */
export function isHubId(source: ModelSource): boolean {
  return source.allowRemoteModels && !/^[./]/.test(source.folder);
}

export async function imageProcessor(folder: string, options: LoadOptions): Promise<ImageProcessor> {
  return (await AutoImageProcessor.from_pretrained(folder, options)) as unknown as ImageProcessor;
}

export async function tokenizer(folder: string, options: LoadOptions): Promise<Tokenizer> {
  return (await AutoTokenizer.from_pretrained(folder, options)) as unknown as Tokenizer;
}

export function floats(tensor: Tensor | undefined, name: string): { data: Float32Array; dims: number[] } {
  if (tensor === undefined || !(tensor.data instanceof Float32Array)) throw new ModelInterfaceError(`model output ${name} is missing or not float32`);
  return { data: tensor.data, dims: tensor.dims };
}
