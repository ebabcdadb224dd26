/** Image decoding for the judge: encoded bytes from the store become transformers.js images. */
import { RawImage } from '@huggingface/transformers';
import { ImageDecodeError } from '../errors.js';

/** Decodes encoded image bytes (PNG, JPEG, WebP); `name` says which input failed. */
export async function decodeImage(bytes: Uint8Array, name: string): Promise<RawImage> {
  try {
    return await RawImage.fromBlob(new Blob([bytes]));
  } catch (error) {
    throw new ImageDecodeError(`image ${name} does not decode (${bytes.length} bytes); expected an encoded PNG, JPEG or WebP image`, { cause: error });
  }
}
