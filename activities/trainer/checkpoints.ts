/**
 * The trainer's checkpoints in the store, so that a retry on any worker resumes where the last
 * try stopped: stored as the trainer announces them, restored before it starts.
 */
import { existsSync } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { artifactKeys } from '../../contract/keys.js';
import { putJson } from '../../store/store.js';
import type { ActivityDependencies } from '../dependencies.js';

/** The trainer's checkpoint folder names (`checkpoints/step-NNNNNNNN`); it counts one complete once it holds `state.json`. */
const CHECKPOINTS = 'checkpoints';
const checkpointName = (step: number) => `step-${String(step).padStart(8, '0')}`;

/** `latest.json` of the stored checkpoint. */
export interface StoredCheckpoint {
  readonly step: number;
  /** Key prefix of its files (`artifactKeys.trainerCheckpoint`). */
  readonly folder: string;
  /** Paths relative to the checkpoint folder, `/`-separated. */
  readonly files: readonly string[];
}

/** Files under a local folder as `/`-separated relative paths, sorted. */
async function filesUnder(folder: string, under = ''): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(folder, ...under.split('/')), { withFileTypes: true })) {
    const path = under === '' ? entry.name : `${under}/${entry.name}`;
    if (entry.isDirectory()) found.push(...(await filesUnder(folder, path)));
    else if (entry.isFile()) found.push(path);
  }
  return found.sort();
}

/** The step of the newest complete checkpoint in the trainer's output folder, or null. */
export async function newestLocalCheckpoint(output: string): Promise<number | null> {
  const steps: number[] = [];
  for (const name of await readdir(join(output, CHECKPOINTS)).catch(() => [] as string[])) {
    const match = /^step-(\d+)$/.exec(name);
    if (match !== null && existsSync(join(output, CHECKPOINTS, name, 'state.json'))) steps.push(Number(match[1]));
  }
  return steps.length === 0 ? null : Math.max(...steps);
}

/**
 * Deletes the stored checkpoint's files except those under `keep`; with null, all of them and
 * `latest.json` first, so that no reader follows it to files already gone.
 */
export async function removeStoredCheckpoints(deps: ActivityDependencies, root: string, keep: string | null): Promise<void> {
  const pointer = artifactKeys.trainerCheckpointPointer(root);
  const keys = await deps.store.list(artifactKeys.trainerCheckpoints(root));
  if (keep === null && keys.includes(pointer)) await deps.store.delete(pointer);
  for (const key of keys) {
    if (key !== pointer && (keep === null || !key.startsWith(keep))) await deps.store.delete(key);
  }
}

/**
 * Forgets every checkpoint of the round's training, stored (`latest.json` first) and local, so that
 * the trainer starts again from step 0: the way on from a checkpoint it cannot read, which every
 * resume would meet again.
 */
export async function discardCheckpoints(deps: ActivityDependencies, root: string, output: string): Promise<void> {
  await removeStoredCheckpoints(deps, root, null);
  await rm(join(output, CHECKPOINTS), { recursive: true, force: true });
}

/**
 * Stores one complete checkpoint folder: its files, then `latest.json` naming them, then the
 * older checkpoint's files are deleted. A crash at any point leaves `latest.json` naming a whole
 * checkpoint (or none), plus at worst files it does not name, which the next upload or the end
 * of the training removes.
 */
async function storeCheckpoint(deps: ActivityDependencies, root: string, step: number, folder: string): Promise<void> {
  const files = await filesUnder(folder);
  if (!files.includes('state.json')) throw new Error(`${folder}: no state.json, not a complete checkpoint`);
  const prefix = artifactKeys.trainerCheckpoint(root, step);
  try {
    for (const file of files) await deps.store.putFile(`${prefix}${file}`, join(folder, ...file.split('/')));
  } catch (error) {
    // Unnamed files are harmless but useless: the store stays tidy where it can.
    for (const key of await deps.store.list(prefix).catch(() => [])) await deps.store.delete(key).catch(() => undefined);
    throw error;
  }
  const stored: StoredCheckpoint = { step, folder: prefix, files };
  await putJson(deps.store, artifactKeys.trainerCheckpointPointer(root), stored);
  await removeStoredCheckpoints(deps, root, prefix);
}

/**
 * Downloads the stored checkpoint into the trainer's checkpoint folder under a hidden name and
 * renames it into place once whole, so `--resume-from latest` finds it and never half of it
 * (the trainer deletes leftover `.tmp-*` folders itself).
 */
export async function restoreCheckpoint(deps: ActivityDependencies, stored: StoredCheckpoint, output: string): Promise<void> {
  const checkpoints = join(output, CHECKPOINTS);
  const target = join(checkpoints, checkpointName(stored.step));
  const scratch = join(checkpoints, `.tmp-restore-${checkpointName(stored.step)}`);
  await rm(scratch, { recursive: true, force: true });
  for (const file of stored.files) await deps.store.getFile(`${stored.folder}${file}`, join(scratch, ...file.split('/')));
  await rm(target, { recursive: true, force: true });
  await rename(scratch, target);
}

/**
 * Stores the trainer's checkpoints as it announces them; an announced folder is complete (the
 * trainer renames it into place). One upload at a time, and of those announced meanwhile only the
 * newest goes next: the trainer keeps few checkpoints, and an older one is worth nothing once a
 * newer one exists. A folder the trainer deleted before it was copied is skipped.
 */
export class CheckpointUploader {
  private next: { readonly step: number; readonly folder: string } | null = null;
  private busy = false;
  private done: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: ActivityDependencies,
    private readonly root: string,
    /** The newest step stored or announced (-1: none); the trainer's steps only grow, a repeat is ignored. */
    private newest: number,
    private readonly warn: (message: string) => void,
  ) {}

  offer(step: number, folder: string): void {
    if (step <= this.newest) return;
    this.newest = step;
    this.next = { step, folder };
    if (this.busy) return;
    this.busy = true;
    this.done = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      for (let item = this.next; item !== null; item = this.next) {
        this.next = null;
        try {
          await storeCheckpoint(this.deps, this.root, item.step, item.folder);
        } catch (error) {
          this.warn(`trainer checkpoint of step ${item.step} not stored: ${(error as Error).message}`);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** Resolves once every announced checkpoint is stored (or skipped). */
  async finish(): Promise<void> {
    while (this.busy) await this.done;
  }
}
