/**
 * PNG files with text metadata. sharp encodes the pixels; the text goes in as our own
 * chunks because sharp's metadata options cannot write tEXt. A chunk is: data length
 * (4 bytes, big-endian), type (4 ASCII bytes), data, CRC-32 of type + data.
 */
import sharp from 'sharp';

import type { RgbImage } from './sampler.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (ISO 3309, as PNG specifies it). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function pngChunk(type: string, data: Uint8Array): Buffer {
  if (!/^[A-Za-z]{4}$/.test(type)) throw new Error(`PNG chunk type must be 4 ASCII letters, got ${JSON.stringify(type)}`);
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(8 + data.length + 4);
  out.writeUInt32BE(data.length, 0);
  typeAndData.copy(out, 4);
  out.writeUInt32BE(crc32(typeAndData), 8 + data.length);
  return out;
}

function isLatin1(text: string): boolean {
  return [...text].every((c) => c.codePointAt(0)! <= 0xff);
}

/**
 * One text entry as a chunk: tEXt (Latin-1) when the value is Latin-1, else iTXt
 * (UTF-8, uncompressed), so prompts in any script survive.
 */
export function textChunk(keyword: string, value: string): Buffer {
  if (!/^[\u0020-\u007e]{1,79}$/.test(keyword) || keyword.startsWith(' ') || keyword.endsWith(' ')) {
    throw new Error(`PNG text keyword must be 1-79 printable ASCII characters without outer spaces, got ${JSON.stringify(keyword)}`);
  }
  const key = Buffer.from(keyword, 'latin1');
  if (isLatin1(value)) return pngChunk('tEXt', Buffer.concat([key, Buffer.of(0), Buffer.from(value, 'latin1')]));
  // keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL, text
  return pngChunk('iTXt', Buffer.concat([key, Buffer.of(0, 0, 0, 0, 0), Buffer.from(value, 'utf8')]));
}

interface Chunk {
  readonly type: string;
  readonly data: Buffer;
  readonly start: number;
  readonly end: number;
}

export function pngChunks(png: Buffer): Chunk[] {
  if (!png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG file (bad signature)');
  const chunks: Chunk[] = [];
  for (let offset = 8; offset < png.length;) {
    const length = png.readUInt32BE(offset);
    const end = offset + 12 + length;
    if (end > png.length) throw new Error(`PNG chunk at byte ${offset} runs past the end of the file`);
    chunks.push({ type: png.toString('latin1', offset + 4, offset + 8), data: png.subarray(offset + 8, offset + 8 + length), start: offset, end });
    offset = end;
  }
  return chunks;
}

/** Inserts text entries right after IHDR (before the image data, where readers look first). */
export function withText(png: Buffer, entries: Readonly<Record<string, string>>): Buffer {
  const header = pngChunks(png)[0];
  if (header?.type !== 'IHDR') throw new Error('PNG does not start with IHDR');
  const text = Object.entries(entries).map(([key, value]) => textChunk(key, value));
  return Buffer.concat([png.subarray(0, header.end), ...text, png.subarray(header.end)]);
}

/** The tEXt and iTXt entries of a PNG. */
export function readText(png: Buffer): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const { type, data } of pngChunks(png)) {
    const nul = data.indexOf(0);
    if (type === 'tEXt') entries[data.toString('latin1', 0, nul)] = data.toString('latin1', nul + 1);
    if (type === 'iTXt') {
      const language = data.indexOf(0, nul + 3);
      const translated = data.indexOf(0, language + 1);
      entries[data.toString('latin1', 0, nul)] = data.toString('utf8', translated + 1);
    }
  }
  return entries;
}

export async function encodePng(image: RgbImage, text: Readonly<Record<string, string>> = {}): Promise<Buffer> {
  const png = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .png()
    .toBuffer();
  return withText(png, text);
}

/** The chunks that draw the image: its header, palette, transparency, pixels and end. */
const DRAWING_CHUNKS = new Set(['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND']);

/**
 * The same image with every other chunk dropped: text entries (a sampled image names its
 * generator and prompt there), colour profiles, times. What is left shows exactly what the
 * pixels show, for a viewer who must not learn where an image came from.
 */
export function pixelsOnly(png: Buffer): Buffer {
  const kept = pngChunks(png).filter((c) => DRAWING_CHUNKS.has(c.type));
  return Buffer.concat([PNG_SIGNATURE, ...kept.map((c) => png.subarray(c.start, c.end))]);
}
