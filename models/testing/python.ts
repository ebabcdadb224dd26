/** Test and benchmark helpers that run the project's Python reference programs. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python');
const PYTHON_DIR = join(REPO_ROOT, 'python');
const SHAPES_PACK = join(REPO_ROOT, 'packs', 'shapes');

/** `python -m module args...` in python/, one thread (it shares the machine with the tests). */
export async function runPythonModule(module: string, args: readonly string[], timeoutMs = 600_000): Promise<string> {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} not found: run scripts/setup-python.sh first`);
  try {
    const { stdout } = await run(PYTHON, ['-m', module, ...args], {
      cwd: PYTHON_DIR,
      env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONPATH: PYTHON_DIR },
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    // execFile's message already carries the command and its stderr.
    throw new Error(`python -m ${module} failed: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * The shapes pack's generator once the pack is committed (its manifest exists);
 * until then a random-weight generator of the same architecture built into `scratch`.
 */
export async function testGenerator(scratch: string): Promise<string> {
  if (existsSync(join(SHAPES_PACK, 'pack.json'))) return join(SHAPES_PACK, 'generator');
  const folder = join(scratch, 'tiny-generator');
  await runPythonModule('parity.tiny_generator', [folder]);
  return folder;
}
