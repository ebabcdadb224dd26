/** The worker's sample cache: bounded by its size, and the store read instead whenever it has no good copy. */
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { createMetrics } from '../observability/metrics.js';
import { recordingMeter } from '../observability/testing/meter.js';
import { LocalFolderStore } from '../store/local.js';
import { readSampled, SampleCache } from './sampleCache.js';

async function scratch(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sample-cache-'));
}

const image = (byte: number, size = 100) => Buffer.alloc(size, byte);

/** A store that counts its reads. */
class CountingStore extends LocalFolderStore {
  reads = 0;
  override async get(key: string): Promise<Buffer> {
    this.reads += 1;
    return super.get(key);
  }
}

describe('SampleCache', () => {
  it('keeps images under their keys and removes the oldest when over its size', async () => {
    const folder = join(await scratch(), 'samples');
    const cache = new SampleCache(folder, 250);
    for (const n of [1, 2, 3]) {
      await cache.put(`runs/r/samples/0/${n}.png`, image(n));
      // Distinct modification times, however coarse the file system's clock.
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await cache.get('runs/r/samples/0/1.png')).toBeNull();
    expect(await cache.get('runs/r/samples/0/2.png')).toEqual(image(2));
    expect(await cache.get('runs/r/samples/0/3.png')).toEqual(image(3));
    expect(await readdir(folder)).toHaveLength(2);

    // An image larger than the whole cache is not kept, and evicts nothing.
    await cache.put('runs/r/samples/0/big.png', image(4, 300));
    expect(await cache.get('runs/r/samples/0/big.png')).toBeNull();
    expect(await readdir(folder)).toHaveLength(2);

    await cache.delete(['runs/r/samples/0/2.png', 'runs/r/samples/0/3.png', 'runs/r/samples/0/never.png']);
    expect(await readdir(folder)).toEqual([]);
  });

  it('fails no sampling when it cannot write: the judge then reads the store', async () => {
    const root = await scratch();
    // The cache's folder is a file: nothing can be written under it.
    await writeFile(join(root, 'samples'), 'not a folder');
    const cache = new SampleCache(join(root, 'samples'), 1000);
    await expect(cache.put('a.png', image(1))).resolves.toBeUndefined();
    expect(await cache.get('a.png')).toBeNull();
  });
});

describe('readSampled', () => {
  it('reads the cached copy without the store, and the store when the cache has none, has none readable, or there is no cache; it counts each read by its source', async () => {
    const root = await scratch();
    const store = new CountingStore(join(root, 'store'));
    const cache = new SampleCache(join(root, 'samples'), 10_000);
    const { meter, recorded } = recordingMeter();
    const metrics = createMetrics(() => meter);
    const cached = { sampleCache: cache, store, metrics };
    const uncached = { store, metrics };
    const sources = () => recorded.filter((r) => r.name === 'selfreward_judge_image_reads').map((r) => `${String(r.tags['source'])}:${r.value}`);
    const decode = async (bytes: Buffer) => {
      if (bytes[0] === 0xff) throw new Error('not an image');
      return bytes.toString();
    };
    await store.put('cached.png', Buffer.from('published'));
    await cache.put('cached.png', Buffer.from('published'));
    expect(await readSampled(cached, 'cached.png', decode)).toBe('published');
    expect(store.reads).toBe(0);
    expect(sources()).toEqual(['cache:1']);

    await store.put('elsewhere.png', Buffer.from('from the store'));
    expect(await readSampled(cached, 'elsewhere.png', decode)).toBe('from the store');
    expect(store.reads).toBe(1);
    expect(await readSampled(uncached, 'cached.png', decode)).toBe('published');
    expect(store.reads).toBe(2);
    expect(sources()).toEqual(['cache:1', 'store:1', 'store:1']);

    // A damaged cached copy: the store's is read, and the damaged one leaves the cache.
    await store.put('damaged.png', Buffer.from('intact'));
    await cache.put('damaged.png', Buffer.from([0xff, 0x00]));
    expect(await readSampled(cached, 'damaged.png', decode)).toBe('intact');
    expect(store.reads).toBe(3);
    expect(await cache.get('damaged.png')).toBeNull();
    expect(sources()).toEqual(['cache:1', 'store:1', 'store:1', 'store:1']);

    // Neither holds it: the store's error, as without a cache, and no read counted.
    await expect(readSampled(cached, 'missing.png', decode)).rejects.toThrow();
    expect(sources()).toHaveLength(4);
  });
});
