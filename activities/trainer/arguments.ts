/** The trainer's command line: the flags for a round's LoRA settings and the environment it sees. */
import type { LoraSettings } from '../../config/round.js';

/** The trainer's flags for a round's LoRA settings. `--resume-from latest` starts fresh when there is no checkpoint. */
export function trainerArguments(lora: LoraSettings, paths: { generator: string; dataset: string; output: string }, device: string, threads: number): string[] {
  const args = ['--generator', paths.generator, '--dataset', paths.dataset, '--output', paths.output];
  args.push(
    '--rank',
    String(lora.rank),
    '--learning-rate',
    String(lora.learningRate),
    '--lr-scheduler',
    lora.lrScheduler,
    '--batch-size',
    String(lora.batchSize),
    '--seed',
    String(lora.seed),
  );
  args.push(...(lora.maxSteps === null ? ['--epochs', String(lora.epochs)] : ['--max-steps', String(lora.maxSteps)]));
  if (lora.resolution !== null) args.push('--resolution', String(lora.resolution));
  args.push('--snr-gamma', String(lora.snrGamma), '--caption-dropout', String(lora.captionDropout));
  args.push('--mixed-precision', lora.mixedPrecision);
  if (lora.gradientCheckpointing) args.push('--gradient-checkpointing');
  args.push('--optimizer', lora.optimizer);
  args.push('--export-precision', lora.exportPrecision);
  args.push('--checkpoint-every', String(lora.checkpointEvery), '--resume-from', 'latest');
  args.push('--device', device.startsWith('cuda') ? 'cuda' : 'cpu', '--threads', String(threads));
  return args;
}

/** A trainer's place among the workers that train one LoRA together (`lora.workers` > 1). */
export type TeamPlace = { readonly lead: number } | { readonly join: string };

/**
 * The flags of a trainer that leads a team of up to `lead` workers' trainers (it opens the
 * meeting point) or joins the leader at `join` (host:port); each waits `waitSeconds` for the others.
 */
export function teamArguments(place: TeamPlace, waitSeconds: number): string[] {
  const role = 'lead' in place ? ['--team-size', String(place.lead)] : ['--team-leader', place.join];
  return [...role, '--team-wait', String(waitSeconds)];
}

/**
 * What of the worker's environment the trainer inherits: the system's (paths, locale, temporary
 * folder), Python's, the numeric libraries' and CUDA's, and the Hugging Face caches' settings;
 * never the worker's own (Temporal address, store credentials), whatever else it holds.
 */
const INHERITED =
  /^(PATH|HOME|USER|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|TEMP|TMP|LD_LIBRARY_PATH|PYTHON\w*|VIRTUAL_ENV|OMP_\w+|MKL_\w+|OPENBLAS_\w+|KMP_\w+|CUDA_\w+|NVIDIA_\w+|CUBLAS_\w+|NCCL_\w+|GLOO_\w+|TORCH_\w+|PYTORCH_\w+|HF_\w+|HUGGINGFACE_\w+|TRANSFORMERS_\w+|DIFFUSERS_\w+|XDG_CACHE_HOME)$/;

/** The trainer's environment: the allowed part of the worker's, only the worker's device (as cuda:0), and the worker's thread count for the numeric libraries. */
export function trainerEnvironment(device: string, threads: number, worker: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const inherited = Object.fromEntries(Object.entries(worker).filter((entry): entry is [string, string] => INHERITED.test(entry[0]) && entry[1] !== undefined));
  const index = /^cuda:(\d+)$/.exec(device)?.[1] ?? (device === 'cuda' ? '0' : null);
  return {
    ...inherited,
    OMP_NUM_THREADS: String(threads),
    MKL_NUM_THREADS: String(threads),
    CUDA_VISIBLE_DEVICES: index ?? '',
  };
}
