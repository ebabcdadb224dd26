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

/**
 * The smallest round that still runs every stage: three prompts of three classes, two images each,
 * one evaluation prompt. Judged at threshold 0, where every image passes and the rule still ranks
 * them: the tests that use it are about the machinery (a few denoising steps, or an untrained
 * detector, show no class at a real threshold), not about quality. `overrides` replaces top-level fields.
 */
export function tinyRoundInput(generator: string, detector: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    generator: { base: generator },
    judge: { detector, captioner: join(PACK, 'captioner'), clip: join(PACK, 'clip'), threshold: 0, batchSize: 4 },
    prompts: [
      { className: 'circle', text: 'one red circle on a white background' },
      { className: 'square', text: 'two blue squares on a black background' },
      { className: 'triangle', text: 'one green triangle on a grey background' },
    ],
    samplesPerPrompt: 2,
    shards: 2,
    evaluation: { prompts: [{ className: 'circle', text: 'two yellow circles on a white background' }], seedsPerPrompt: 2, bootstrapResamples: 100 },
    ...overrides,
  };
}

/**
 * The referee for integration tests: the pack's own referee (a closed-vocabulary detector trained
 * apart from the judge) when it is built, else the pack's OWL-ViT detector, which the referee
 * takes as readily (any family in the registry): the machinery is the same, only the
 * independence from the judge is lost.
 */
export function testReferee(): { readonly detector: string; readonly independent: boolean } {
  const referee = join(PACK, 'referee');
  return existsSync(join(referee, 'onnx', 'model.onnx')) ? { detector: referee, independent: true } : { detector: join(PACK, 'detector'), independent: false };
}

/** A round input's evaluation graded by `testReferee()` and the pack's CLIP, among the pack grammar's colours and backgrounds. */
export function refereedEvaluation(roundInput: Record<string, unknown>): Record<string, unknown> {
  return {
    ...(roundInput['evaluation'] as Record<string, unknown>),
    referee: {
      detector: testReferee().detector,
      clip: join(PACK, 'clip'),
      colours: ['red', 'green', 'blue', 'yellow', 'purple', 'orange'],
      backgrounds: ['white', 'black', 'gray'],
    },
  };
}
