import type { PreparedRound, PrepareRequest } from '../contract/activities.js';
import type { RoundInput } from '../config/round.js';
import { artifactKeys } from '../contract/keys.js';
import { readGeneratorGeometry, resolveGeneratorFiles } from '../models/generator.js';
import { Judge, Referee } from '../models/judge/index.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { storeRoundInput } from './input.js';
import { loadPrompts } from './prompts.js';
import { validationPrompts } from './validate.js';
import { judgeConfig, refereeConfig } from './runtime.js';

/** The store prefixes a round reads (a tuned UNet, earlier datasets) must hold what they promise. */
async function requireArtifacts(deps: ActivityDependencies, field: string, prefix: string, file: string): Promise<void> {
  const folder = prefix.endsWith('/') ? prefix : `${prefix}/`;
  if (!(await deps.store.exists(`${folder}${file}`))) throw badData('MissingArtifact', `${field}: ${folder}${file} is not in the store`);
}

/**
 * What the round's input asks of the worker's device that it cannot give, or null: fp16 training
 * needs CUDA (the trainer would refuse it only after sampling, judging and curating).
 */
export function deviceRefusal(input: RoundInput, device: string): string | null {
  if (input.lora.mixedPrecision === 'fp16' && !device.startsWith('cuda')) {
    return `lora.mixedPrecision: "fp16" needs a CUDA worker, and this worker's device is ${device}; use "bf16" or "no" on the CPU, or run the round on GPU workers`;
  }
  return null;
}

/**
 * The check before sampling: everything about a round that can be known before hours of model
 * work is checked here, on a worker (the files are the workers'), and fails the round at once
 * naming the field or file. The worker's device can train as asked (fp16 needs CUDA); prompt files parse; held-out prompts are not training prompts
 * (unless allowed); the generator's, the judge's and the referee's folders have their files and a supported
 * detector, which can be asked about every class; the image size suits the generator; the tuned UNet and earlier datasets are in the store. Then the input is stored, and
 * every later stage is handed its key.
 */
export function createPrepareRound(deps: ActivityDependencies) {
  return async function prepareRound({ root, input }: PrepareRequest): Promise<PreparedRound> {
    const refusal = deviceRefusal(input, deps.device);
    if (refusal !== null) throw badData('InvalidInput', refusal);
    const training = input.prompts === null ? [] : await loadPrompts(input.prompts, 'prompts');
    const heldOut = await loadPrompts(input.evaluation.prompts, 'evaluation.prompts');
    if (!input.evaluation.allowOverlap) {
      const trainingTexts = new Set(training.map((p) => `${p.className}\u0000${p.text}`));
      const shared = heldOut.filter((p) => trainingTexts.has(`${p.className}\u0000${p.text}`));
      if (shared.length > 0) {
        throw badData(
          'InvalidInput',
          `evaluation.prompts: ${shared.length} held-out prompt(s) are also training prompts (the first: class "${shared[0]!.className}"); held-out means unseen in training: remove them, or set evaluation.allowOverlap`,
        );
      }
    }
    // Several LoRAs need training prompts to withhold for choosing between them.
    await validationPrompts(input);
    const { sizeMultiple } = await readGeneratorGeometry(await resolveGeneratorFiles({ base: input.generator.base }));
    for (const side of ['width', 'height'] as const) {
      const value = input.sampling[side];
      if (value !== 0 && value % sizeMultiple !== 0) {
        throw badData(
          'InvalidInput',
          `sampling.${side}: expected 0 or a multiple of ${sizeMultiple} (the generator's VAE scale times its UNet's downsampling), got ${value}`,
        );
      }
    }
    const judge = judgeConfig(input.judge, deps.device);
    Judge.checkFolders(judge);
    const classes = [...new Set([...training, ...heldOut].map((p) => p.className))].sort();
    Judge.checkClasses(judge, classes);
    if (input.evaluation.referee !== null) {
      // The referee grades the held-out prompts only; its errors name `evaluation.referee.detector` (or `.clip`).
      const referee = refereeConfig(input.evaluation.referee, deps.device);
      Referee.checkFolders(referee);
      Referee.checkClasses(referee, [...new Set(heldOut.map((p) => p.className))].sort());
    }
    if (input.generator.tunedUnet !== null) await requireArtifacts(deps, 'generator.tunedUnet', input.generator.tunedUnet, 'unet/model.onnx');
    if (input.dataset !== null) await requireArtifacts(deps, 'dataset', input.dataset, 'metadata.jsonl');
    for (const [i, prefix] of input.includeDatasets.entries()) await requireArtifacts(deps, `includeDatasets.${i}`, prefix, 'metadata.jsonl');

    const key = artifactKeys.input(root);
    const digest = await storeRoundInput(deps.store, key, input);
    return { input: key, digest, classes, prompts: training.length, heldOutPrompts: heldOut.length };
  };
}
