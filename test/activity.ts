import type { MockActivityEnvironment } from '@temporalio/testing';

import { inputDigest, storeRoundInput } from '../activities/input.js';
import type { RoundInput } from '../config/round.js';
import type { PreparedRound, PrepareRequest, RoundRequest } from '../contract/activities.js';
import type { ArtifactStore } from '../store/store.js';

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
