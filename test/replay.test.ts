/**
 * Determinism guard: the workflows must replay the committed histories of earlier runs. A
 * change that would break running workflows fails here; record new histories on purpose with
 * `RECORD_HISTORIES=1 npx vitest run test/round` when a change is meant to be incompatible
 * (and version it with patched()). `test/workflows` records the rounds whose shards are judged
 * on the worker that sampled them, and the one whose judge falls back to the shared queue.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { describe, it } from 'vitest';

import { WORKFLOWS_PATH } from '../workers/plugin.js';
import { HISTORIES } from './servers.js';

describe('replay of committed histories', () => {
  const files = readdirSync(HISTORIES).filter((f) => f.endsWith('.json'));
  it.each(files)('%s replays', async (file) => {
    const history = historyFromJSON(JSON.parse(await readFile(join(HISTORIES, file), 'utf8')));
    await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, file.replace(/\.json$/, ''));
  });
});
