/** The trainer's command line: the flags for a round's LoRA settings and the environment it sees. */
import type { LoraSettings } from '../../config/round.js';

/** The trainer's flags for a round's LoRA settings. `--resume-from latest` starts fresh when there is no checkpoint. */
export function trainerArguments(lora: LoraSettings, paths: { generator: string; dataset: string; output: string }, device: string): string[] {
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
  args.push('--checkpoint-every', String(lora.checkpointEvery), '--resume-from', 'latest');
  args.push('--device', device.startsWith('cuda') ? 'cuda' : 'cpu');
  return args;
}

/** The trainer sees only the worker's device, as cuda:0. */
export function trainerEnvironment(device: string): Record<string, string> {
  const index = /^cuda:(\d+)$/.exec(device)?.[1] ?? (device === 'cuda' ? '0' : null);
  return index === null ? { CUDA_VISIBLE_DEVICES: '' } : { CUDA_VISIBLE_DEVICES: index };
}
