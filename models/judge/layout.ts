/**
 * Model folders in the transformers.js layout. Loaders read what the folder declares
 * (config.json's model_type and id2label) and check the files they will need before any
 * session is created, so a wrong folder fails with the file's name rather than deep in a library.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLayoutError } from '../errors.js';

export interface ModelConfig {
  readonly modelType: string;
  readonly architectures: readonly string[];
  /** Closed-vocabulary detectors' label names by class index. */
  readonly id2label: Readonly<Record<string, string>> | null;
}

export function readModelConfig(folder: string): ModelConfig {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new ModelLayoutError(`model folder ${folder} does not exist; expected a folder in the transformers.js layout (config.json, onnx/*.onnx)`);
  }
  const path = join(folder, 'config.json');
  if (!existsSync(path)) throw new ModelLayoutError(`${path} is missing; expected the model's config.json`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ModelLayoutError(`${path} is not valid JSON`, { cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null) throw new ModelLayoutError(`${path} must hold a JSON object`);
  const fields = parsed as Record<string, unknown>;
  const modelType = fields['model_type'];
  if (typeof modelType !== 'string') throw new ModelLayoutError(`${path} has no string "model_type"`);
  const architectures = Array.isArray(fields['architectures']) ? fields['architectures'].filter((a): a is string => typeof a === 'string') : [];
  const labels = fields['id2label'];
  const id2label =
    typeof labels === 'object' && labels !== null
      ? Object.fromEntries(Object.entries(labels).filter((entry): entry is [string, string] => typeof entry[1] === 'string'))
      : null;
  return { modelType, architectures, id2label };
}

export function requireFiles(folder: string, files: readonly string[], role: string): void {
  for (const file of files) {
    if (!existsSync(join(folder, file))) {
      throw new ModelLayoutError(`${join(folder, file)} is missing; a ${role} folder needs ${files.join(', ')}`);
    }
  }
}

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;
