/**
 * `npm run bench:neighbour`: the LoRA trainer's seconds per step on a shared host. The trainer
 * runs as a worker runs it (the same flags and environment, `trainerArguments` and
 * `trainerEnvironment`) on a small dataset the shapes pack's generator samples, three ways:
 *   alone, with every core (`SELF_REWARD_THREADS` unset on an otherwise idle host);
 *   beside a busy neighbour, still with every core (two workers on one host, neither told);
 *   beside the same neighbour, with the cores the neighbour leaves (`SELF_REWARD_THREADS`).
 * The neighbour is the TypeScript sampler sampling without pause on `--neighbour-threads`
 * threads, as a sampling worker on the same host would. Prints one JSON line per run and the
 * slowdowns. Options: --steps N (default 30) --cores N (default: the cores this process may
 * use) --neighbour-threads N (default 1).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { trainerArguments, trainerEnvironment } from '../../activities/trainer/arguments.js';
import { validateRoundInput } from '../../config/round.js';
import { Generator } from '../../models/generator.js';
import { encodePng } from '../../models/png.js';
import { sample } from '../../models/sampler.js';
import { PYTHON, REPO_ROOT } from '../../models/testing/python.js';

const GENERATOR = join(REPO_ROOT, 'packs', 'shapes', 'generator');

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '30' },
    cores: { type: 'string' },
    'neighbour-threads': { type: 'string', default: '1' },
    neighbour: { type: 'boolean', default: false },
  },
});

/** The neighbour: samples until it is killed. */
async function neighbour(threads: number): Promise<never> {
  const generator = await Generator.load({ base: GENERATOR }, { threads });
  const prompts = ['two red circles on a white background', 'a blue star on a black background'];
  for (let seed = 0; ; seed += prompts.length)
    await sample(generator, { prompts, seeds: prompts.map((_, i) => seed + i), steps: 20, guidanceScale: 7.5, width: 64, height: 64 });
}

/** A small imagefolder dataset: 32 samples of the pack's generator and their prompts. */
async function dataset(folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  const generator = await Generator.load({ base: GENERATOR }, { threads: 1 });
  try {
    const texts = [
      'a red circle on a white background',
      'two blue squares on a black background',
      'three green stars on a gray background',
      'a yellow cross on a white background',
    ];
    const lines: string[] = [];
    for (const [t, text] of texts.entries()) {
      const seeds = Array.from({ length: 8 }, (_, s) => 100 * t + s);
      const { images } = await sample(generator, { prompts: seeds.map(() => text), seeds, steps: 20, guidanceScale: 7.5, width: 64, height: 64 });
      for (const [s, image] of images.entries()) {
        const name = `${t}-${s}.png`;
        await writeFile(join(folder, name), await encodePng(image));
        lines.push(JSON.stringify({ file_name: name, text }));
      }
    }
    await writeFile(join(folder, 'metadata.jsonl'), `${lines.join('\n')}\n`);
  } finally {
    await generator.release();
  }
}

/** One trainer run; its seconds per step from metrics.json (the training loop's wall time, loading and export apart). */
async function train(data: string, output: string, steps: number, threads: number): Promise<number> {
  const round = validateRoundInput({
    generator: { base: GENERATOR },
    judge: { detector: GENERATOR, captioner: GENERATOR, clip: GENERATOR },
    prompts: { file: join(REPO_ROOT, 'packs', 'shapes', 'prompts', 'train.txt') },
    lora: { maxSteps: steps, rank: 16, batchSize: 16 },
    evaluation: { prompts: { file: join(REPO_ROOT, 'packs', 'shapes', 'prompts', 'eval.txt') } },
  });
  if (!round.ok) throw new Error(`the benchmark's round input is not valid: ${JSON.stringify(round.errors)}`);
  const { lora } = round.value;
  const args = [...trainerArguments(lora, { generator: GENERATOR, dataset: data, output }, 'cpu', threads), '--skip-onnx', '--log-every', '1000'];
  const env = { ...trainerEnvironment('cpu', threads), PYTHONPATH: join(REPO_ROOT, 'python') };
  const child = spawn(PYTHON, ['-m', 'loratrain', ...args], { cwd: join(REPO_ROOT, 'python'), env, stdio: ['ignore', 'ignore', 'inherit'] });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`the trainer exited with ${code}`);
  const metrics = JSON.parse(await readFile(join(output, 'metrics.json'), 'utf8')) as { wall_time_s: number; steps: number };
  return metrics.wall_time_s / metrics.steps;
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

if (values.neighbour) await neighbour(Number(values['neighbour-threads']));

const steps = Number(values.steps);
const cores = Number(values.cores ?? availableParallelism());
const neighbourThreads = Number(values['neighbour-threads']);
const scratch = await mkdtemp(join(tmpdir(), 'bench-neighbour-'));
try {
  const data = join(scratch, 'dataset');
  await dataset(data);
  const run = async (name: string, threads: number, busy: boolean) => {
    const load = busy
      ? spawn(process.execPath, [...process.execArgv, import.meta.filename, '--neighbour', '--neighbour-threads', String(neighbourThreads)], {
          stdio: 'inherit',
        })
      : null;
    try {
      // The neighbour loads its models first, so the trainer meets it already sampling.
      if (load) await new Promise((resolve) => setTimeout(resolve, 5000));
      const secondsPerStep = await train(data, join(scratch, name), steps, threads);
      const figures = {
        run: name,
        trainerThreads: threads,
        neighbourThreads: busy ? neighbourThreads : 0,
        cores,
        steps,
        secondsPerStep: Number(secondsPerStep.toFixed(4)),
      };
      console.log(JSON.stringify(figures));
      return secondsPerStep;
    } finally {
      if (load) await stop(load);
    }
  };
  const alone = await run('alone', cores, false);
  const oversubscribed = await run('beside a neighbour, every core', cores, true);
  const fitted = await run('beside a neighbour, the cores it leaves', Math.max(1, cores - neighbourThreads), true);
  console.log(
    `slowdown beside a busy neighbour: ${(oversubscribed / alone).toFixed(2)}x with every core, ${(fitted / alone).toFixed(2)}x with the cores it leaves`,
  );
} finally {
  await rm(scratch, { recursive: true, force: true });
}
