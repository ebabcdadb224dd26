import type { MockActivityEnvironment } from '@temporalio/testing';

import { inputDigest, storeRoundInput } from '../activities/input.js';
import type { ActivityDependencies } from '../activities/dependencies.js';
import { ModelRuntime } from '../activities/runtime.js';
import { validateRoundInput, type RoundInput } from '../config/round.js';
import type { PreparedRound, PrepareRequest, RoundRequest, ValidateRequest, ValidationResult } from '../contract/activities.js';
import type { ArtifactStore } from '../store/store.js';
import { workerMetrics } from '../workers/dependencies.js';

/** `env.run` with the activity's own return type (the SDK's signature cannot infer it). */
export function runActivity<A, R>(env: MockActivityEnvironment, activity: (arg: A) => Promise<R>, arg: A): Promise<R> {
  return env.run<[A], R, (arg: A) => Promise<R>>(activity, arg);
}

/** Stores a round's input where its stages can read it, under a key of its own content (a run never changes its input), and returns the key. */
export async function storedInput(store: ArtifactStore, root: string, input: RoundInput): Promise<string> {
  const key = `${root}/input-${inputDigest(input).slice(0, 16)}.json`;
  await storeRoundInput(store, key, input);
  return key;
}

/**
 * A stand-in for the check before sampling, for tests whose stages are stand-ins too: it keeps
 * each round's input in memory by key, and `inputOf` gives a stage's request its input back.
 */
export function standInPreparation() {
  const inputs = new Map<string, RoundInput>();
  return {
    prepareRound: async ({ root, input }: PrepareRequest): Promise<PreparedRound> => {
      const key = `${root}/input.json`;
      inputs.set(key, input);
      return { input: key, digest: '', classes: ['circle'], prompts: 1, heldOutPrompts: 1 };
    },
    inputOf: ({ inputKey }: RoundRequest): RoundInput => {
      const input = inputs.get(inputKey);
      if (input === undefined) throw new Error(`no prepared input at ${inputKey}`);
      return input;
    },
  };
}

/** A stand-in for one LoRA's validation, for tests whose rounds train one LoRA (they never validate) or do not look at its figures. */
export async function standInValidation({ root, lora, seed }: ValidateRequest): Promise<ValidationResult> {
  return {
    manifest: `${root}/validation/seed-${seed}.json`,
    seed,
    lora,
    prompts: 1,
    pairs: 1,
    accuracyBase: 0.5,
    accuracyTuned: 0.5,
    winRate: 0.5,
    finalLoss: 0.1,
  };
}

/** A valid round input of placeholder paths and `overrides`, for activities that read its settings, not its files. */
export function roundInputWith(overrides: Record<string, unknown> = {}): RoundInput {
  const checked = validateRoundInput({
    generator: { base: 'g' },
    judge: { detector: 'd', clip: 'c' },
    prompts: { file: 'p' },
    evaluation: { prompts: { file: 'e' } },
    ...overrides,
  });
  if (!checked.ok) throw new Error(`bad test input: ${JSON.stringify(checked.errors)}`);
  return checked.value;
}

/** Dependencies for activities that use the store only: no model is loaded and no trainer runs. */
export function storeOnlyDependencies(store: ArtifactStore): ActivityDependencies {
  return {
    store,
    runtime: new ModelRuntime('cpu'),
    trainer: { command: ['false'], cwd: '.', env: {}, stopGraceMs: 0, address: '127.0.0.1' },
    device: 'cpu',
    threads: 1,
    workDir: '.',
    allowedPaths: null,
    metrics: workerMetrics(),
  };
}
