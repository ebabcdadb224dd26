/**
 * The layers and their rules, read off the import statements: no import cycles; workflow code
 * (a deterministic sandbox) reaches no Node built-in and imports only types from the activities;
 * each folder imports only from the layers below it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

import { describe, expect, it } from 'vitest';

import { REPO_ROOT } from './servers.js';

/** The product's folders, top to bottom: a folder may import from its own and from those below it. */
const LAYERS: readonly (readonly string[])[] = [
  ['cli'],
  ['client', 'workers'],
  ['workflows', 'activities'],
  ['observability'],
  ['contract'],
  ['store'],
  ['config'],
  ['models'],
];
/** A leaf every layer may use: the declarative schema reader, which imports nothing. */
const SHARED = ['config/schema.ts'];

interface Import {
  readonly from: string;
  /** A repository file (relative path), or a package / Node built-in name. */
  readonly to: string;
  readonly typeOnly: boolean;
}

function sourceFiles(folder: string): string[] {
  return readdirSync(join(REPO_ROOT, folder), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.bench.ts'))
    .map((e) => relative(REPO_ROOT, join(e.parentPath, e.name)))
    .filter((file) => !file.includes('/testing/') && !file.includes('/bench/'));
}

function importsOf(file: string): Import[] {
  const text = readFileSync(join(REPO_ROOT, file), 'utf8');
  const found: Import[] = [];
  for (const match of text.matchAll(/^(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'([^']+)';/gms)) {
    const specifier = match[3]!;
    const named = /\{([^}]*)\}/.exec(match[0])?.[1] ?? '';
    const allTypes = named.trim() !== '' && named.split(',').every((n) => n.trim() === '' || n.trim().startsWith('type '));
    const typeOnly = match[2] !== undefined || (allTypes && !/\bfrom\b[^{]*\w+\s*,\s*\{/.test(match[0]));
    const to = specifier.startsWith('.') ? normalize(join(dirname(file), specifier)).replace(/\.js$/, '.ts') : specifier;
    found.push({ from: file, to, typeOnly });
  }
  return found;
}

const FILES = LAYERS.flat().flatMap(sourceFiles);
const IMPORTS = new Map(FILES.map((file) => [file, importsOf(file)]));
const layerOf = (file: string) => LAYERS.findIndex((folders) => folders.includes(file.split('/')[0]!));

describe('the layers', () => {
  it('find the product files and their imports', () => {
    expect(FILES.length).toBeGreaterThan(50);
    expect(IMPORTS.get('workflows/round.ts')?.map((i) => i.to)).toContain('contract/keys.ts');
  });

  it('have no import cycle', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (file: string, path: readonly string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const { to } of IMPORTS.get(file) ?? []) if (IMPORTS.has(to)) visit(to, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of FILES) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('import only from their own layer and the ones below it', () => {
    const upward = [...IMPORTS.values()]
      .flat()
      .filter((i) => IMPORTS.has(i.to) && !SHARED.includes(i.to) && layerOf(i.to) < layerOf(i.from) && !(i.typeOnly && i.from.startsWith('workflows/')))
      .map((i) => `${i.from} -> ${i.to}`);
    expect(upward).toEqual([]);
  });

  it('keep workflow code free of Node built-ins and of activity code, all the way down', () => {
    const reached = new Set<string>();
    const problems: string[] = [];
    const walk = (file: string) => {
      if (reached.has(file)) return;
      reached.add(file);
      for (const i of IMPORTS.get(file) ?? []) {
        if (i.typeOnly) continue;
        if (i.to.startsWith('node:')) problems.push(`${file} imports ${i.to}`);
        else if (/^(activities|store|workers|client|cli)\//.test(i.to)) problems.push(`${file} imports ${i.to} (workflows may import only its types)`);
        else if (IMPORTS.has(i.to)) walk(i.to);
      }
    };
    for (const file of FILES.filter((f) => f.startsWith('workflows/'))) walk(file);
    expect(problems).toEqual([]);
    expect(reached).toContain('contract/keys.ts');
  });
});
