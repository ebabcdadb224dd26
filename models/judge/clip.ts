/** The judge's CLIP encoder: image and text towers with projection, in the transformers.js layout. */
import { CLIPTextModelWithProjection, CLIPVisionModelWithProjection, type RawImage, type Tensor } from '@huggingface/transformers';
import { loadOptions, onDevice } from './device.js';
import { readModelConfig, requireFiles, TOKENIZER_FILES } from './layout.js';
import { floats, imageProcessor, isHubId, tokenizer, type ModelSource, type Runnable } from './transformers.js';

export interface ClipEncoder {
  images(images: RawImage[]): Promise<Float32Array[]>;
  texts(texts: string[]): Promise<Float32Array[]>;
}

const CLIP_FILES = ['preprocessor_config.json', ...TOKENIZER_FILES, 'onnx/vision_model.onnx', 'onnx/text_model.onnx'];

function rows(tensor: Tensor | undefined, name: string): Float32Array[] {
  const { data, dims } = floats(tensor, name);
  const [count = 0, width = 0] = dims;
  return Array.from({ length: count }, (_, i) => data.slice(i * width, (i + 1) * width));
}

/** Checks a CLIP folder's layout without loading it. */
export function checkClipFolder(folder: string): void {
  readModelConfig(folder);
  requireFiles(folder, CLIP_FILES, 'CLIP');
}

/** CLIP's two towers with projection, run separately so images and prompts batch independently. */
export async function loadClip(source: ModelSource): Promise<ClipEncoder> {
  if (!isHubId(source)) checkClipFolder(source.folder);
  const options = loadOptions(source.device, source.allowRemoteModels, source.threads);
  return onDevice(source.device, `CLIP ${source.folder}`, async () => {
    const vision = (await CLIPVisionModelWithProjection.from_pretrained(source.folder, options)) as unknown as Runnable;
    const text = (await CLIPTextModelWithProjection.from_pretrained(source.folder, options)) as unknown as Runnable;
    const pixels = await imageProcessor(source.folder, options);
    const tokens = await tokenizer(source.folder, options);
    return {
      async images(images) {
        return rows((await vision({ pixel_values: (await pixels(images)).pixel_values }))['image_embeds'], 'image_embeds');
      },
      async texts(texts) {
        return rows((await text(tokens(texts, { padding: true, truncation: true })))['text_embeds'], 'text_embeds');
      },
    };
  });
}
