import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';

import { ArtifactNotFoundError, checkKey, checkPrefix, type ArtifactStore } from './store.js';

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR';
}

/** Artifacts as files under a folder: the embedded default, and the cache a GPU worker reads models from. */
export class LocalFolderStore implements ArtifactStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  get location(): string {
    return this.root;
  }

  locate(key: string): string {
    return join(this.root, ...checkKey(key).split('/'));
  }

  async prepare(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  /** A hidden sibling: same file system (so the rename is atomic), never listed, never a key. */
  private async temporary(path: string): Promise<string> {
    await mkdir(dirname(path), { recursive: true });
    return join(dirname(path), `.tmp-${randomBytes(6).toString('hex')}`);
  }

  private async publish(path: string, write: (temporary: string) => Promise<void>): Promise<void> {
    const temporary = await this.temporary(path);
    try {
      await write(temporary);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const path = this.locate(key);
    await this.publish(path, (temporary) => writeFile(temporary, body));
  }

  async putFile(key: string, source: string): Promise<void> {
    const path = this.locate(key);
    await this.publish(path, (temporary) => copyFile(source, temporary));
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await readFile(this.locate(key));
    } catch (error) {
      if (isMissing(error)) throw new ArtifactNotFoundError(`${key}: no such artifact in ${this.root}`);
      throw error;
    }
  }

  async getFile(key: string, target: string): Promise<void> {
    const path = this.locate(key);
    if (!(await this.exists(key))) throw new ArtifactNotFoundError(`${key}: no such artifact in ${this.root}`);
    await mkdir(dirname(resolve(target)), { recursive: true });
    const temporary = join(dirname(resolve(target)), `.tmp-${randomBytes(6).toString('hex')}`);
    await copyFile(path, temporary);
    await rename(temporary, target);
  }

  async exists(key: string): Promise<boolean> {
    return stat(this.locate(key)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  async delete(key: string): Promise<void> {
    // Emptied folders stay: removing one could race a writer that has just created it.
    await rm(this.locate(key), { force: true });
  }

  async list(prefix: string): Promise<string[]> {
    checkPrefix(prefix);
    // Walk only the deepest folder the prefix names, then filter by the full prefix.
    const folder = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const start = folder === '' ? this.root : join(this.root, ...folder.split('/'));
    const keys: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if (isMissing(error)) return;
        throw error;
      }
      for (const entry of entries) {
        if (entry.name.startsWith('.')) continue;
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.isFile()) keys.push(relative(this.root, path).split(sep).join('/'));
      }
    };
    await walk(start);
    return keys.filter((k) => k.startsWith(prefix)).sort();
  }
}
