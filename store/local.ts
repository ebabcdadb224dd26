import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';

import { ArtifactNotFoundError, checkKey, checkPrefix, type ArtifactStore } from './store.js';

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR';
}

/**
 * A temporary's name says which process on which host writes it, so a later process can tell
 * the leftovers of a killed writer (SIGKILL between write and rename) from a live one's file.
 */
function temporaryName(): string {
  return `.tmp-${hostname()}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

const TEMPORARY = /^\.tmp-(.+)-(\d+)-[0-9a-f]{12}$/;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A temporary whose writer was a process of this host that no longer runs; other hosts' are theirs to judge. */
function isOrphan(name: string): boolean {
  const match = TEMPORARY.exec(name);
  return match !== null && match[1] === hostname() && !isAlive(Number(match[2]));
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

  /** Creates the folder, and removes the temporaries that killed writers of this host left behind. */
  async prepare(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    const entries = await readdir(this.root, { recursive: true, withFileTypes: true });
    await Promise.all(entries.filter((e) => e.isFile() && isOrphan(e.name)).map((e) => rm(join(e.parentPath, e.name), { force: true })));
  }

  /** A hidden sibling: same file system (so the rename is atomic), never listed, never a key. */
  private async temporary(path: string): Promise<string> {
    await mkdir(dirname(path), { recursive: true });
    return join(dirname(path), temporaryName());
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
    const temporary = join(dirname(resolve(target)), temporaryName());
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
