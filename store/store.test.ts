/** One contract for both stores; the S3 store runs against a real S3 server (rclone serve s3). */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startS3Server, type S3Server } from '../test/servers.js';
import { storeFromEnvironment } from './config.js';
import { LocalFolderStore } from './local.js';
import { contentTypeOf, S3Store } from './s3.js';
import { ArtifactKeyError, ArtifactNotFoundError, checkKey, findJson, putJson, StoreAccessError, StoreUnavailableError, type ArtifactStore } from './store.js';

function contract(name: string, open: () => Promise<ArtifactStore>): void {
  describe(name, () => {
    let store: ArtifactStore;
    beforeAll(async () => {
      store = await open();
    });

    it('puts and gets bytes and text', async () => {
      await store.put('a/b/one.bin', Uint8Array.of(1, 2, 3));
      await store.put('a/b/two.txt', 'zwei');
      expect([...(await store.get('a/b/one.bin'))]).toEqual([1, 2, 3]);
      expect((await store.get('a/b/two.txt')).toString()).toBe('zwei');
    });

    it('overwrites a key as a whole', async () => {
      await store.put('over/x', 'first, longer');
      await store.put('over/x', 'second');
      expect((await store.get('over/x')).toString()).toBe('second');
    });

    it('says whether a key exists and throws a typed error for a missing one', async () => {
      await store.put('e/here', '1');
      expect(await store.exists('e/here')).toBe(true);
      expect(await store.exists('e/absent')).toBe(false);
      expect(await store.exists('e')).toBe(false);
      await expect(store.get('e/absent')).rejects.toBeInstanceOf(ArtifactNotFoundError);
    });

    it('lists keys under a prefix, sorted, and nothing for an unknown prefix', async () => {
      for (const key of ['l/s1/b.png', 'l/s1/a.png', 'l/s10/c.png', 'l/s2/d.png']) await store.put(key, key);
      expect(await store.list('l/s1/')).toEqual(['l/s1/a.png', 'l/s1/b.png']);
      expect(await store.list('l/s1')).toEqual(['l/s1/a.png', 'l/s1/b.png', 'l/s10/c.png']);
      expect(await store.list('l/')).toHaveLength(4);
      expect(await store.list('nothing/here/')).toEqual([]);
    });

    it('copies files in and out', async () => {
      const scratch = await mkdtemp(join(tmpdir(), 'store-file-'));
      const source = join(scratch, 'weights.bin');
      await writeFile(source, Buffer.alloc(300_000, 7));
      await store.putFile('f/weights.bin', source);
      const target = join(scratch, 'out', 'copy.bin');
      await store.getFile('f/weights.bin', target);
      expect((await readFile(target)).equals(await readFile(source))).toBe(true);
      expect((await readdir(join(scratch, 'out'))).filter((n) => n.startsWith('.'))).toEqual([]);
      await expect(store.getFile('f/missing.bin', join(scratch, 'no.bin'))).rejects.toBeInstanceOf(ArtifactNotFoundError);
    });

    it('deletes a key, and a missing one without error', async () => {
      await store.put('d/gone.bin', 'x');
      await store.put('d/kept.bin', 'y');
      await store.delete('d/gone.bin');
      await store.delete('d/gone.bin');
      await store.delete('d/never.bin');
      expect(await store.exists('d/gone.bin')).toBe(false);
      expect(await store.list('d/')).toEqual(['d/kept.bin']);
    });

    it('reads JSON back and finds no manifest before it is published', async () => {
      expect(await findJson(store, 'm/manifest.json')).toBeNull();
      await putJson(store, 'm/manifest.json', { images: 3 });
      expect(await findJson(store, 'm/manifest.json')).toEqual({ images: 3 });
    });

    it('refuses keys that could escape the store or collide with temporary files', async () => {
      for (const key of ['', '/abs', 'a//b', '../up', 'a/./b', 'a/.hidden', 'back\\slash']) {
        await expect(store.put(key, 'x')).rejects.toBeInstanceOf(ArtifactKeyError);
      }
    });
  });
}

contract('local folder store', async () => {
  const store = new LocalFolderStore(join(await mkdtemp(join(tmpdir(), 'store-local-')), 'not-yet'));
  await store.prepare();
  return store;
});

describe('local folder store after a killed writer', () => {
  it('removes the temporaries of dead writers of this host when it starts, and no other file', async () => {
    const root = await mkdtemp(join(tmpdir(), 'store-orphans-'));
    const folder = join(root, 'runs', 'wf', 'round-001', 'samples');
    await mkdir(folder, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const names = {
      orphan: `.tmp-${hostname()}-${dead}-0123456789ab`,
      live: `.tmp-${hostname()}-${process.pid}-0123456789ab`,
      otherHost: `.tmp-elsewhere-${dead}-0123456789ab`,
      image: '0000-00.png',
    };
    for (const name of Object.values(names)) await writeFile(join(folder, name), 'x');
    await new LocalFolderStore(root).prepare();
    expect((await readdir(folder)).sort()).toEqual([names.live, names.otherHost, names.image].sort());
  });
});

describe('S3 store on a real S3 server', () => {
  let server: S3Server;
  beforeAll(async () => {
    server = await startS3Server(await mkdtemp(join(tmpdir(), 'store-s3-')));
  });
  afterAll(async () => server?.stop());

  it("keeps the key pair off the server's command line, which every user of the machine can read", async () => {
    const commandLine = await readFile(`/proc/${server.pid}/cmdline`, 'utf8');
    expect(commandLine).toContain('serve');
    expect(commandLine).not.toContain(server.secretKey);
  });

  it('names the store, never the keys, when it refuses the credentials or cannot be reached', async () => {
    const settings = {
      endpoint: server.endpoint,
      bucket: 'artifacts',
      accessKey: server.accessKey,
      secretKey: 'a-wrong-secret',
      region: 'us-east-1',
      prefix: '',
    };
    const refused = await new S3Store(settings).get('any/key').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StoreAccessError);
    expect((refused as Error).message).toContain(`S3 store ${server.endpoint} bucket artifacts: refused the credentials`);
    expect((refused as Error).message).not.toContain('a-wrong-secret');
    const down = await new S3Store({ ...settings, endpoint: 'http://127.0.0.1:1', secretKey: server.secretKey }).exists('any/key').catch((e: unknown) => e);
    expect(down).toBeInstanceOf(StoreUnavailableError);
    expect((down as Error).message).toMatch(/^S3 store http:\/\/127.0.0.1:1 bucket artifacts: ECONNREFUSED/);
  });

  contract('S3 store', async () => {
    const store = new S3Store({
      endpoint: server.endpoint,
      bucket: 'artifacts',
      accessKey: server.accessKey,
      secretKey: server.secretKey,
      region: 'us-east-1',
      prefix: 'deployment/',
    });
    await store.prepare();
    await store.prepare();
    return store;
  });
});

describe('S3 objects as a browser opens them', () => {
  const store = new S3Store({
    endpoint: 'http://s3.example:9000/',
    bucket: 'artifacts',
    accessKey: 'a',
    secretKey: 's',
    region: 'us-east-1',
    prefix: 'team a/',
  });

  it('are served with the type their extension names', () => {
    expect(contentTypeOf('runs/x/report.html')).toBe('text/html; charset=utf-8');
    expect(contentTypeOf('runs/x/evaluation/base/0000-00.PNG')).toBe('image/png');
    expect(contentTypeOf('runs/x/evaluation.json')).toBe('application/json');
    expect(contentTypeOf('runs/x/lora/unet/model.onnx')).toBe('application/octet-stream');
    expect(contentTypeOf('runs/x/no-extension')).toBe('application/octet-stream');
  });

  it('are located by a URL whose path segments are encoded, the separators kept', () => {
    expect(store.locate('runs/id 50%/run-1/report.html')).toBe('http://s3.example:9000/artifacts/team%20a/runs/id%2050%25/run-1/report.html');
  });
});

describe('storeFromEnvironment', () => {
  it('defaults to a local folder and reads s3:// with its settings', () => {
    expect(storeFromEnvironment({})).toBeInstanceOf(LocalFolderStore);
    const s3 = storeFromEnvironment({ SELF_REWARD_STORE: 's3://bucket/team/a', S3_ENDPOINT: 'http://localhost:9000', S3_ACCESS_KEY: 'k', S3_SECRET_KEY: 's' });
    expect(s3.location).toBe('s3://bucket/team/a/');
  });

  it('names the missing settings', () => {
    expect(() => storeFromEnvironment({ SELF_REWARD_STORE: 's3://bucket' })).toThrow(/S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY/);
  });

  it('accepts plain keys', () => {
    expect(checkKey('runs/wf-1/round-1/samples/shard-0/0003-07.png')).toBe('runs/wf-1/round-1/samples/shard-0/0003-07.png');
  });
});
