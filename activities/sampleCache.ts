/**
 * The images a GPU worker sampled, kept in its work folder: a shard's judge, scheduled on the
 * worker that sampled it, reads them from disk instead of downloading them from the store again.
 * Bounded: a shard's images go once it is judged here, and the oldest go first whenever the
 * folder holds more than its size (a shard judged elsewhere leaves its images behind).
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { IMAGE_SOURCES, SelfRewardMetrics } from '../observability/metrics.js';
import type { ArtifactStore } from '../store/store.js';

export class SampleCache {
  /** Bytes in the folder as last counted, plus those put since; null: count it again. Saves a scan of the folder per image. */
  private held: number | null = null;

  constructor(
    readonly folder: string,
    readonly maxBytes: number,
  ) {}

  /** One file per store key; hashed, since keys hold slashes and may be long. */
  private path(key: string): string {
    return join(this.folder, `${createHash('sha256').update(key).digest('hex')}.png`);
  }

  /**
   * Keeps an image the store has accepted under `key`: published keys never change, so the cached
   * bytes are the store's. A file is renamed into place whole, so a reader never sees part of
   * one. A cache that cannot write only costs the judge a download, so nothing here throws.
   */
  async put(key: string, bytes: Buffer): Promise<void> {
    if (bytes.length > this.maxBytes) return;
    const target = this.path(key);
    const partial = `${target}.${randomUUID()}.partial`;
    try {
      await mkdir(this.folder, { recursive: true });
      await writeFile(partial, bytes);
      await rename(partial, target);
      this.held = this.held === null ? await this.count() : this.held + bytes.length;
      if (this.held > this.maxBytes) await this.trim();
    } catch {
      await rm(partial, { force: true }).catch(() => undefined);
    }
  }

  /** The image's bytes, or null when this worker does not hold them (or cannot read them). */
  async get(key: string): Promise<Buffer | null> {
    return readFile(this.path(key)).catch(() => null);
  }

  async delete(keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((key) => rm(this.path(key), { force: true }).catch(() => undefined)));
    this.held = null;
  }

  /** The folder's files with their sizes and ages; every file counts, so workers sharing the folder share the bound. */
  private async files(): Promise<{ name: string; size: number; modified: number }[]> {
    const names = await readdir(this.folder);
    return (
      await Promise.all(
        names.map(async (name) => {
          const info = await stat(join(this.folder, name)).catch(() => null);
          return info === null ? [] : [{ name, size: info.size, modified: info.mtimeMs }];
        }),
      )
    ).flat();
  }

  private async count(): Promise<number> {
    return (await this.files()).reduce((sum, f) => sum + f.size, 0);
  }

  /** Removes the oldest files until the folder holds at most `maxBytes`. */
  private async trim(): Promise<void> {
    const files = await this.files();
    let total = files.reduce((sum, f) => sum + f.size, 0);
    for (const file of files.sort((a, b) => a.modified - b.modified)) {
      if (total <= this.maxBytes) break;
      await rm(join(this.folder, file.name), { force: true });
      total -= file.size;
    }
    this.held = total;
  }
}

type ImageSource = (typeof IMAGE_SOURCES)[number];

/** Where a judge reads sampled images from, and where it counts those reads. */
export interface SampledImageSource {
  readonly sampleCache?: SampleCache;
  readonly store: ArtifactStore;
  readonly metrics: Pick<SelfRewardMetrics, 'judgeImageReads'>;
}

/**
 * A sampled image, as `read` makes it of its bytes: this worker's cached copy when it holds one
 * that reads, else the store's. A damaged cached copy is read from the store, which holds the
 * published bytes. Each read counts by where it came from (`judgeImageReads`).
 */
export async function readSampled<T>(source: SampledImageSource, key: string, read: (bytes: Buffer) => Promise<T>): Promise<T> {
  const { sampleCache: cache, store, metrics } = source;
  const cached = await cache?.get(key);
  if (cached) {
    try {
      const value = await read(cached);
      metrics.judgeImageReads.record(1, { source: 'cache' satisfies ImageSource });
      return value;
    } catch {
      await cache?.delete([key]);
    }
  }
  const value = await read(await store.get(key));
  metrics.judgeImageReads.record(1, { source: 'store' satisfies ImageSource });
  return value;
}
