import sharp from 'sharp';
import { describe, expect, it } from 'vitest';

import { crc32, encodePng, pixelsOnly, pngChunk, pngChunks, readText, textChunk } from './png.js';

describe('crc32', () => {
  it('matches the PNG specification’s check values', () => {
    expect(crc32(Buffer.from('IEND'))).toBe(0xae426082);
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

describe('pngChunk', () => {
  it('lays out length, type, data and CRC', () => {
    const chunk = pngChunk('tEXt', Buffer.from('a\u0000b', 'latin1'));
    expect(chunk.readUInt32BE(0)).toBe(3);
    expect(chunk.toString('latin1', 4, 8)).toBe('tEXt');
    expect(chunk.toString('latin1', 8, 11)).toBe('a\u0000b');
    expect(chunk.readUInt32BE(11)).toBe(crc32(chunk.subarray(4, 11)));
  });

  it('refuses bad chunk types and keywords', () => {
    expect(() => pngChunk('tEX', Buffer.alloc(0))).toThrow(/4 ASCII letters/);
    expect(() => textChunk('', 'x')).toThrow(/keyword/);
    expect(() => textChunk('k'.repeat(80), 'x')).toThrow(/keyword/);
  });
});

describe('encodePng', () => {
  it('writes the pixels and the text entries, readable back', async () => {
    const data = Uint8Array.from({ length: 2 * 3 * 3 }, (_, i) => i * 10);
    const text = { prompt: 'two red circles', seed: '42', negative_prompt: 'naïve', note: '三つの円' };
    const png = await encodePng({ width: 3, height: 2, data }, text);
    expect(readText(png)).toEqual(text);
    const types = pngChunks(png).map((c) => c.type);
    expect(types[0]).toBe('IHDR');
    expect(types.filter((t) => t === 'tEXt')).toHaveLength(3);
    expect(types.filter((t) => t === 'iTXt')).toHaveLength(1);
    const decoded = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect(decoded.info).toMatchObject({ width: 3, height: 2, channels: 3 });
    expect(new Uint8Array(decoded.data)).toEqual(data);
    for (const chunk of pngChunks(png)) {
      expect(png.readUInt32BE(chunk.end - 4)).toBe(crc32(png.subarray(chunk.start + 4, chunk.end - 4)));
    }
  });
});

describe('pixelsOnly', () => {
  it('drops the text entries and keeps the pixels', async () => {
    const data = Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => (i * 37) % 256);
    const png = await encodePng({ width: 4, height: 2, data }, { generator: '/models/base + unet runs/x/lora/', prompt: 'a circle' });
    const bare = pixelsOnly(png);
    expect(readText(bare)).toEqual({});
    expect(bare.includes(Buffer.from('lora'))).toBe(false);
    const drawing = ['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND'];
    expect(pngChunks(bare).map((c) => c.type)).toEqual(
      pngChunks(png)
        .map((c) => c.type)
        .filter((t) => drawing.includes(t)),
    );
    const decoded = await sharp(bare).raw().toBuffer({ resolveWithObject: true });
    expect(new Uint8Array(decoded.data)).toEqual(data);
  });

  it('refuses what is not a PNG', () => {
    expect(() => pixelsOnly(Buffer.from('GIF89a'))).toThrow(/not a PNG/);
  });
});
