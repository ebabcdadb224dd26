/** The artifact store with its calls measured: bytes read and written, and each call's latency by operation. */
import { stat } from 'node:fs/promises';

import type { ArtifactStore } from '../store/store.js';
import type { SelfRewardMetrics } from './metrics.js';

type Operation = 'get' | 'put' | 'list' | 'exists' | 'delete';

export class MeteredStore implements ArtifactStore {
  constructor(
    private readonly store: ArtifactStore,
    private readonly metrics: SelfRewardMetrics,
  ) {}

  get location(): string {
    return this.store.location;
  }

  prepare(): Promise<void> {
    return this.store.prepare();
  }

  put(key: string, body: Uint8Array | string): Promise<void> {
    return this.timed(
      'put',
      () => this.store.put(key, body),
      () => (typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength),
    );
  }

  putFile(key: string, path: string): Promise<void> {
    return this.timed(
      'put',
      () => this.store.putFile(key, path),
      async () => (await stat(path)).size,
    );
  }

  get(key: string): Promise<Buffer> {
    return this.timed(
      'get',
      () => this.store.get(key),
      (body: Buffer) => body.byteLength,
    );
  }

  getFile(key: string, path: string): Promise<void> {
    return this.timed(
      'get',
      () => this.store.getFile(key, path),
      async () => (await stat(path)).size,
    );
  }

  exists(key: string): Promise<boolean> {
    return this.timed('exists', () => this.store.exists(key));
  }

  delete(key: string): Promise<void> {
    return this.timed('delete', () => this.store.delete(key));
  }

  list(prefix: string): Promise<string[]> {
    return this.timed('list', () => this.store.list(prefix));
  }

  locate(key: string): string {
    return this.store.locate(key);
  }

  private async timed<T>(op: Operation, call: () => Promise<T>, bytes?: (result: T) => number | Promise<number>): Promise<T> {
    const started = performance.now();
    const result = await call();
    this.metrics.storeSeconds.record((performance.now() - started) / 1000, { op });
    if (bytes !== undefined && (op === 'get' || op === 'put')) this.metrics.storeBytes.record(await bytes(result), { op });
    return result;
  }
}
