/** The options of `npm run bench:sd21` (models/bench/sd21.bench.ts), parsed and checked. */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

export interface Sd21BenchOptions {
  /** The random-weight SD 2.1-base folder; built there when it has no ONNX UNet yet. */
  readonly generator: string;
  readonly size: number;
  readonly steps: number;
  readonly batch: number;
  readonly guidance: number;
  /** CPU threads, the same for both sides (onnxruntime's intra-op threads, torch's threads). */
  readonly threads: number;
  /** Timed calls per process, after one warm-up call. */
  readonly runs: number;
  /** How many times each side runs, alternating: ours, diffusers, ours, diffusers, ... */
  readonly rounds: number;
}

export const SD21_DEFAULTS = { size: 256, steps: 4, batch: 1, guidance: 7.5, threads: 2, runs: 2, rounds: 2 } as const;

/** SD's latents are an eighth of the image, and the UNet halves them three times. */
const SIZE_MULTIPLE = 64;

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

export function parseSd21Args(argv: readonly string[], root: string): Sd21BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      generator: { type: 'string', default: 'build/sd21-base-random' },
      size: { type: 'string', default: String(SD21_DEFAULTS.size) },
      steps: { type: 'string', default: String(SD21_DEFAULTS.steps) },
      batch: { type: 'string', default: String(SD21_DEFAULTS.batch) },
      guidance: { type: 'string', default: String(SD21_DEFAULTS.guidance) },
      threads: { type: 'string', default: String(SD21_DEFAULTS.threads) },
      runs: { type: 'string', default: String(SD21_DEFAULTS.runs) },
      rounds: { type: 'string', default: String(SD21_DEFAULTS.rounds) },
    },
  });
  const size = positiveInteger('size', values.size);
  if (size % SIZE_MULTIPLE !== 0) throw new Error(`--size must be a multiple of ${SIZE_MULTIPLE} (SD's VAE and UNet), got ${size}`);
  const guidance = Number(values.guidance);
  if (!Number.isFinite(guidance) || guidance < 0) throw new Error(`--guidance must be a number ≥ 0, got ${JSON.stringify(values.guidance)}`);
  return {
    generator: resolve(root, values.generator),
    size,
    steps: positiveInteger('steps', values.steps),
    batch: positiveInteger('batch', values.batch),
    guidance,
    threads: positiveInteger('threads', values.threads),
    runs: positiveInteger('runs', values.runs),
    rounds: positiveInteger('rounds', values.rounds),
  };
}
