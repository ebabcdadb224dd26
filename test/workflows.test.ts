/**
 * Workflows against a real local Temporal dev server (the venv's `temporal` CLI), with the
 * search attributes registered as the local stack registers them.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TASK_QUEUES } from '../config/queues.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { dependenciesFromEnvironment, selfRewardPlugin } from '../workers/setup.js';
import { requireBinary, TEMPORAL_CLI } from './servers.js';

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: requireBinary(TEMPORAL_CLI) },
      dbFilename: join(await mkdtemp(join(tmpdir(), 'temporal-')), 'test.sqlite'),
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
    },
  });
});

afterAll(async () => {
  await env?.teardown();
});

async function failureOf(run: Promise<unknown>): Promise<ApplicationFailure> {
  const error = await run.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WorkflowFailedError);
  const cause = (error as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

describe('input validation, on a worker that takes the workflows from the plugin', () => {
  it('fails a round at once with a non-retryable error naming the field and the expected value', async () => {
    const plugin = selfRewardPlugin(dependenciesFromEnvironment({ SELF_REWARD_STORE: await mkdtemp(join(tmpdir(), 'plugin-store-')) }));
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: TASK_QUEUES.workflows, plugins: [plugin] });
    await worker.runUntil(async () => {
      const round = await failureOf(
        env.client.workflow.execute('selfRewardRound', {
          taskQueue: TASK_QUEUES.workflows,
          workflowId: `round-${randomUUID()}`,
          args: [{ generator: { base: 'g' }, judge: { detector: 'd', clip: 'c' }, prompts: { file: 'p' }, evaluation: { prompts: { file: 'e' } }, samplesPerPrompt: 0 }],
        }),
      );
      expect(round.type).toBe('InvalidInput');
      expect(round.nonRetryable).toBe(true);
      expect(round.message).toContain('samplesPerPrompt: expected an integer in [1, 1000], got 0');

      const campaign = await failureOf(
        env.client.workflow.execute('selfRewardCampaign', { taskQueue: TASK_QUEUES.workflows, workflowId: `campaign-${randomUUID()}`, args: [{ rounds: 2 }] }),
      );
      expect(campaign.type).toBe('InvalidInput');
      expect(campaign.message).toContain('round: expected');
    });
  });
});
