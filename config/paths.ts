/**
 * Where the package's own files are: the folder holding its package.json, whether the code runs
 * from the sources (`tsx`) or from the build in `dist/`, in a checkout or installed as a package.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function packageRoot(from: string): string {
  for (let folder = from; ; folder = dirname(folder)) {
    if (existsSync(join(folder, 'package.json'))) return folder;
    if (dirname(folder) === folder) throw new Error(`no package.json above ${from}`);
  }
}

export const PACKAGE_ROOT = packageRoot(import.meta.dirname);

/** The project venv's bin folder: the trainer's Python and the local stack's servers (scripts/setup-*.sh install them). */
export const VENV_BIN = join(PACKAGE_ROOT, '.venv', 'bin');
