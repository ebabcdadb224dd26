import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

import { parsePromptLines, type PromptLine, type PromptSource } from '../config/prompts.js';
import { describeErrors } from '../config/schema.js';
import { badData } from './failures.js';

/** A round's prompts: inline ones as they are, a file's parsed; a bad file fails the activity at once. */
export async function loadPrompts(source: PromptSource, what: string): Promise<PromptLine[]> {
  if (Array.isArray(source)) return [...(source as readonly PromptLine[])];
  const file = resolve((source as { file: string }).file);
  const text = await readFile(file, 'utf8').catch((error: Error) => {
    throw badData('BadPrompts', `${what}: cannot read ${file} (${error.message}); expected a file of \`class; prompt\` lines`);
  });
  const parsed = parsePromptLines(text, file);
  if (!parsed.ok) throw badData('BadPrompts', `${what}: ${describeErrors(parsed.errors)}`);
  return parsed.value;
}
