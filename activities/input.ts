/**
 * A round's input as its stages read it: from the store, where the check before sampling put it
 * (`prepareRound`), kept in memory by key since a run's input never changes.
 */
import { createHash } from 'node:crypto';

import type { RoundInput } from '../config/round.js';
import { findJson, putJson, type ArtifactStore } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { requireAllowedPaths } from './paths.js';

/** What the store keeps: the input and its digest. */
interface StoredInput {
  readonly digest: string;
  readonly input: RoundInput;
}

const KEPT = 16;
const inputs = new Map<string, RoundInput>();

export function inputDigest(input: RoundInput): string {
  return createHash('sha256').update(JSON.stringify(input)).digest('hex');
}

export async function storeRoundInput(store: ArtifactStore, key: string, input: RoundInput): Promise<string> {
  const digest = inputDigest(input);
  await putJson(store, key, { digest, input } satisfies StoredInput);
  return digest;
}

/** The round's input; its paths are checked against the allowed folders each time it is read from the store. */
export async function roundInput(deps: ActivityDependencies, key: string): Promise<RoundInput> {
  const known = inputs.get(key);
  if (known !== undefined) return known;
  const stored = await findJson<StoredInput>(deps.store, key);
  if (stored === null) throw badData('MissingArtifact', `${key}: not found; the round's input is stored before its first stage`);
  if (inputDigest(stored.input) !== stored.digest) throw badData('BadArtifact', `${key}: its digest does not match its input`);
  await requireAllowedPaths(deps, stored.input);
  if (inputs.size >= KEPT) inputs.delete(inputs.keys().next().value!);
  inputs.set(key, stored.input);
  return stored.input;
}
