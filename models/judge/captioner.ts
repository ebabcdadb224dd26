/** The judge's captioner: an image-to-text model in the transformers.js layout. */
import { AutoModelForVision2Seq, type RawImage } from '@huggingface/transformers';
import { loadOptions, onDevice } from './device.js';
import { readModelConfig, requireFiles, TOKENIZER_FILES } from './layout.js';
import { imageProcessor, isHubId, tokenizer, type Generator, type ModelSource } from './transformers.js';

export interface Captioner {
  caption(images: RawImage[]): Promise<string[]>;
}

const CAPTIONER_FILES = ['preprocessor_config.json', ...TOKENIZER_FILES, 'onnx/encoder_model.onnx', 'onnx/decoder_model_merged.onnx'];

/** Checks a captioner folder's layout without loading it. */
export function checkCaptionerFolder(folder: string): void {
  readModelConfig(folder);
  requireFiles(folder, CAPTIONER_FILES, 'captioner');
}

/** An image-to-text model (VisionEncoderDecoder); decoding follows the folder's generation_config.json. */
export async function loadCaptioner(source: ModelSource): Promise<Captioner> {
  if (!isHubId(source)) checkCaptionerFolder(source.folder);
  const options = loadOptions(source.device, source.allowRemoteModels, source.threads);
  return onDevice(source.device, `captioner ${source.folder}`, async () => {
    const model = (await AutoModelForVision2Seq.from_pretrained(source.folder, options)) as unknown as Generator;
    const pixels = await imageProcessor(source.folder, options);
    const tokens = await tokenizer(source.folder, options);
    return {
      async caption(images) {
        const ids = await model.generate({ inputs: (await pixels(images)).pixel_values });
        return tokens.batch_decode(ids, { skip_special_tokens: true }).map((text) => text.trim());
      },
    };
  });
}
