/**
 * The folders a round's input may name on a worker. With SELF_REWARD_ALLOWED_PATHS set, every
 * path an input gives (the generator, the judge's models, prompt files) must lie inside one of
 * them, after symbolic links are followed: whoever can start a workflow can then make a worker
 * read only what the deployment put there, never its credentials or other files.
 */
import { realpath } from 'node:fs/promises';
import { resolve, sep } from 'node:path';

import type { RoundInput } from '../config/round.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';

/** Each path a round's input names, with the field that names it. */
export function inputPaths(input: RoundInput): { readonly field: string; readonly path: string }[] {
  const paths = [
    { field: 'generator.base', path: input.generator.base },
    { field: 'judge.detector', path: input.judge.detector },
    { field: 'judge.clip', path: input.judge.clip },
    ...(input.judge.captioner === null ? [] : [{ field: 'judge.captioner', path: input.judge.captioner }]),
    ...(input.prompts !== null && !Array.isArray(input.prompts) ? [{ field: 'prompts.file', path: (input.prompts as { file: string }).file }] : []),
    ...(!Array.isArray(input.evaluation.prompts) ? [{ field: 'evaluation.prompts.file', path: (input.evaluation.prompts as { file: string }).file }] : []),
  ];
  return paths;
}

/** The path as the file system resolves it: symbolic links followed where the path exists. */
async function real(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

/** Refuses (non-retryable) an input that names a path outside the allowed folders; with none configured, any path is allowed. */
export async function requireAllowedPaths(deps: ActivityDependencies, input: RoundInput): Promise<void> {
  if (deps.allowedPaths === null) return;
  const roots = await Promise.all(deps.allowedPaths.map(real));
  for (const { field, path } of inputPaths(input)) {
    const actual = await real(path);
    if (!roots.some((root) => actual === root || actual.startsWith(root.endsWith(sep) ? root : `${root}${sep}`))) {
      throw badData('InvalidInput', `${field}: ${path} is outside the folders this worker may read (SELF_REWARD_ALLOWED_PATHS)`);
    }
  }
}
