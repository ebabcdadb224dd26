/** Model folders for integration tests: the shapes pack's when built, else untrained stand-ins of the same architecture. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { PYTHON, REPO_ROOT } from '../models/testing/python.js';

export const PACK = join(REPO_ROOT, 'packs', 'shapes');

/** An OWL-ViT detector whose towers are the pack's CLIP and whose heads are untrained (scores near 0.02). */
const UNTRAINED_DETECTOR = `
import shutil, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
torch.manual_seed(0)
from transformers import AutoTokenizer
from shapesworld.detector import build_model, save_folder
clip, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copyfile(clip / name, out / name)
save_folder(build_model(clip), AutoTokenizer.from_pretrained(str(out)), out)
`;

/**
 * The pack's detector once the pack is complete (its manifest exists, as for the generator),
 * else an untrained one built into `scratch`.
 */
export async function testDetector(scratch: string): Promise<string> {
  if (existsSync(join(PACK, 'pack.json'))) return join(PACK, 'detector');
  const folder = join(scratch, 'untrained-detector');
  await promisify(execFile)(PYTHON, ['-c', UNTRAINED_DETECTOR, join(PACK, 'clip'), folder], {
    cwd: join(REPO_ROOT, 'python'),
    env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONPATH: join(REPO_ROOT, 'python') },
    timeout: 300_000,
  });
  return folder;
}
