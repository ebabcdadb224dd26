import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { LocalFolderStore } from '../store/local.js';
import { createMetrics } from './metrics.js';
import { MeteredStore } from './store.js';
import { recordingMeter } from './testing/meter.js';

describe('MeteredStore', () => {
  it('counts the bytes each get and put moves, times every call by operation, and passes results through', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'metered-'));
    const { meter, recorded } = recordingMeter();
    const store = new MeteredStore(
      new LocalFolderStore(join(scratch, 'store')),
      createMetrics(() => meter),
    );
    await store.put('a/one.txt', 'hello');
    await writeFile(join(scratch, 'big.bin'), Buffer.alloc(3000, 7));
    await store.putFile('a/big.bin', join(scratch, 'big.bin'));
    expect((await store.get('a/one.txt')).toString()).toBe('hello');
    await store.getFile('a/big.bin', join(scratch, 'copy.bin'));
    expect((await readFile(join(scratch, 'copy.bin'))).length).toBe(3000);
    expect(await store.list('a/')).toEqual(['a/big.bin', 'a/one.txt']);
    expect(await store.exists('a/none')).toBe(false);
    await store.delete('a/one.txt');

    const bytes = recorded.filter((r) => r.name === 'selfreward_store_bytes').map((r) => [r.tags['op'], r.value]);
    expect(bytes).toEqual([
      ['put', 5],
      ['put', 3000],
      ['get', 5],
      ['get', 3000],
    ]);
    const timed = recorded.filter((r) => r.name === 'selfreward_store_seconds');
    expect(timed.map((r) => r.tags['op'])).toEqual(['put', 'put', 'get', 'get', 'list', 'exists', 'delete']);
    for (const r of timed) expect(r.value).toBeGreaterThanOrEqual(0);
  });

  it('records nothing for a call that fails, and lets its error through', async () => {
    const { meter, recorded } = recordingMeter();
    const store = new MeteredStore(
      new LocalFolderStore(await mkdtemp(join(tmpdir(), 'metered-'))),
      createMetrics(() => meter),
    );
    await expect(store.get('missing')).rejects.toThrow(/missing/);
    expect(recorded).toEqual([]);
  });
});
