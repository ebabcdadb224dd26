/**
 * Parity of the judge's models with transformers (PyTorch): python/parity/judge_reference.py
 * renders seeded shapes scenes and writes the reference outputs, and the TypeScript loaders must
 * reproduce them from the same PNGs. The detector part needs packs/shapes/detector (or another
 * OWL-ViT folder named by JUDGE_PARITY_DETECTOR).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { RawImage } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosine } from './scores.js';
import { loadCaptioner } from './captioner.js';
import { loadClip } from './clip.js';
import { loadDetector } from './detector.js';
import { decodeImage } from './image.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACK = join(ROOT, 'packs', 'shapes');
const PYTHON = join(ROOT, '.venv', 'bin', 'python');
const DETECTOR = process.env['JUDGE_PARITY_DETECTOR'] ?? join(PACK, 'detector');
const HAS_DETECTOR = existsSync(join(DETECTOR, 'config.json'));

/** Sigmoid scores differ by float32 rounding between PyTorch and onnxruntime kernels. */
const SCORE_TOLERANCE = 1e-4;
/** Boxes are in pixels of a 64-pixel image. */
const BOX_TOLERANCE = 1e-3;

interface Reference {
  images: Array<{ file: string; prompt: string; class: string }>;
  detector: Array<{ scores: number[]; boxes: number[][] }> | null;
  captions: string[];
  clip: { image_embeds: number[][]; text_embeds: number[][] };
}

const source = (folder: string) => ({ folder, device: 'cpu' as const, allowRemoteModels: false, threads: null });

describe.skipIf(!existsSync(PYTHON))('judge parity with transformers (Python)', () => {
  let out = '';
  let reference: Reference;
  let images: RawImage[];

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'judge-parity-'));
    const args = ['-m', 'parity.judge_reference', '--pack', PACK, '--out', out, ...(HAS_DETECTOR ? ['--detector', DETECTOR] : [])];
    await promisify(execFile)(PYTHON, args, { cwd: join(ROOT, 'python'), env: { ...process.env, OMP_NUM_THREADS: '1' } });
    reference = JSON.parse(await readFile(join(out, 'reference.json'), 'utf8')) as Reference;
    images = await Promise.all(reference.images.map(async (r) => decodeImage(await readFile(join(out, r.file)), r.file)));
  });

  afterAll(async () => {
    if (out !== '') await rm(out, { recursive: true, force: true });
  });

  it('captions identically, in one batch', async () => {
    const captioner = await loadCaptioner(source(join(PACK, 'captioner')));
    expect(await captioner.caption(images)).toEqual(reference.captions);
  });

  it('embeds images and prompts like CLIPModel', async () => {
    const clip = await loadClip(source(join(PACK, 'clip')));
    const pairs = [
      [await clip.images(images), reference.clip.image_embeds],
      [await clip.texts(reference.images.map((r) => r.prompt)), reference.clip.text_embeds],
    ] as const;
    for (const [ours, theirs] of pairs) {
      ours.forEach((embedding, i) => {
        const expected = Float32Array.from(theirs[i]!);
        expect(cosine(embedding, expected)).toBeGreaterThan(0.9999);
        const norm = Math.hypot(...embedding);
        const diff = Math.max(...Array.from(embedding, (v, k) => Math.abs(v / norm - expected[k]!)));
        expect(diff).toBeLessThan(1e-4);
      });
    }
  });

  it.skipIf(!HAS_DETECTOR)(
    `scores and boxes every patch like OwlViTForObjectDetection (${HAS_DETECTOR ? DETECTOR : 'skipped: packs/shapes/detector is not built yet'})`,
    async () => {
      const detector = await loadDetector(source(DETECTOR));
      const expected = reference.detector!;
      // Images of one class go through in one batch, so batching is checked too.
      for (const cls of new Set(reference.images.map((r) => r.class))) {
        const members = reference.images.flatMap((r, i) => (r.class === cls ? [i] : []));
        const found = await detector.candidates(
          members.map((i) => images[i]!),
          cls,
          [],
        );
        members.forEach((imageIndex, k) => {
          const ours = found[k]!;
          const theirs = expected[imageIndex]!;
          expect(ours.length).toBe(theirs.scores.length);
          ours.forEach((c, p) => {
            expect(Math.abs(c.score - theirs.scores[p]!)).toBeLessThan(SCORE_TOLERANCE);
            const box = [c.box.xmin, c.box.ymin, c.box.xmax, c.box.ymax];
            box.forEach((v, j) => expect(Math.abs(v - theirs.boxes[p]![j]!)).toBeLessThan(BOX_TOLERANCE));
          });
        });
      }
    },
  );
});
