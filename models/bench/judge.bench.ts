/**
 * `npm run bench:judge`: the TypeScript judge against transformers' Python pipelines on the same
 * shapes images, each after one warm-up pass, as images per second and their ratio.
 * Options: --prompts P --samples N (images per prompt, one judge batch) --detector FOLDER
 * --threads T (CPU threads, the same on both sides; ours as a worker's JudgePool uses them) --lanes N
 * (that many lanes instead of the pool's default).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { validateJudgeConfig } from '../judge/config.js';
import { JudgePool } from '../judge/judgePool.js';
import { decodeImage } from '../judge/image.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACK = join(ROOT, 'packs', 'shapes');

const { values } = parseArgs({
  options: {
    prompts: { type: 'string', default: '16' },
    samples: { type: 'string', default: '8' },
    detector: { type: 'string', default: join(PACK, 'detector') },
    threads: { type: 'string', default: '1' },
    lanes: { type: 'string' },
  },
});

interface BenchPrompt {
  prompt: string;
  class: string;
  files: string[];
}

const out = await mkdtemp(join(tmpdir(), 'bench-judge-'));
try {
  const { stdout } = await promisify(execFile)(
    join(ROOT, '.venv', 'bin', 'python'),
    ['-m', 'parity.judge_bench', '--pack', PACK, '--detector', values.detector, '--out', out, '--prompts', values.prompts, '--samples', values.samples],
    { cwd: join(ROOT, 'python'), env: { ...process.env, OMP_NUM_THREADS: values.threads } },
  );
  const python = JSON.parse(stdout.trim().split('\n').at(-1)!) as { images: number; seconds: number; images_per_second: number };

  const prompts = JSON.parse(await readFile(join(out, 'prompts.json'), 'utf8')) as BenchPrompt[];
  const batches = await Promise.all(prompts.map((p) => Promise.all(p.files.map(async (f) => decodeImage(await readFile(join(out, f)), f)))));
  const judge = await JudgePool.load(
    validateJudgeConfig({
      detector: values.detector,
      captioner: join(PACK, 'captioner'),
      clip: join(PACK, 'clip'),
      batchSize: Number(values.samples),
      threads: Number(values.threads),
    }),
    values.lanes === undefined ? {} : { lanes: Number(values.lanes) },
  );
  const run = async (): Promise<void> => {
    for (const [k, p] of prompts.entries()) await judge.judge(p.prompt, p.class, batches[k]!);
  };
  await run();
  const started = performance.now();
  await run();
  const seconds = (performance.now() - started) / 1000;
  const images = batches.reduce((n, b) => n + b.length, 0);

  const ts = images / seconds;
  console.log(
    `images: ${images} (${prompts.length} prompts x ${values.samples}), threads: ${values.threads} a side, TypeScript judge lanes: ${judge.laneCount}`,
  );
  console.log(`TypeScript judge (batched):      ${ts.toFixed(1)} images/s`);
  console.log(`transformers pipelines (Python): ${python.images_per_second.toFixed(1)} images/s`);
  console.log(`ratio TypeScript / Python:       ${(ts / python.images_per_second).toFixed(2)}`);
  await judge.release();
} finally {
  await rm(out, { recursive: true, force: true });
}
