/**
 * The Temporal Web UI in a real browser (Debian's chromium driven by playwright-core), against
 * a real local dev server with its UI and the rounds' search attributes: a round started from
 * the "Start Workflow" page as the README tells users to, run by the real CPU worker, and the
 * way the UI shows a running round, its search attributes and its memo.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';

import type { ActivityDependencies } from '../activities/dependencies.js';
import { loadRoundConfig } from '../cli/config.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { dependenciesFromEnvironment } from '../workers/dependencies.js';
import { workerOptions } from '../workers/setup.js';
import { SelfRewardClient } from '../client/index.js';
import { roundRoot } from '../contract/keys.js';
import { testGenerator } from '../models/testing/python.js';
import { testDetector, tinyRoundInput } from './models.js';
import { testDependencies, withRoundWorkers } from './stack.js';
import { freePort, REPO_ROOT, requireBinary, TEMPORAL_CLI } from './servers.js';
import { CHROMIUM, CHROMIUM_ARGS, requireChromium } from './browser.js';
import { TASK_QUEUES } from '../contract/workers.js';

/** Page loads take tens of seconds on a busy two-core machine. */
const UI_TIMEOUT_MS = 120_000;

let scratch: string;
let env: TestWorkflowEnvironment;
let ui: string;
let browser: BrowserContext;
let page: Page;

/** The UI comes up a little after the frontend port the environment waits for. */
async function waitForUi(url: string): Promise<void> {
  const deadline = Date.now() + UI_TIMEOUT_MS;
  for (;;) {
    const ok = await fetch(url).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`the Web UI did not answer on ${url}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  requireChromium();
  scratch = await mkdtemp(join(tmpdir(), 'webui-'));
  const uiPort = await freePort();
  env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: requireBinary(TEMPORAL_CLI) },
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      ui: true,
      uiPort,
    },
  });
  ui = `http://127.0.0.1:${uiPort}`;
  await waitForUi(ui);
  // A fresh, empty profile: no earlier column settings or cached pages change what the UI shows.
  browser = await chromium.launchPersistentContext(await mkdtemp(join(scratch, 'profile-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1600, height: 1000 },
  });
  browser.setDefaultTimeout(UI_TIMEOUT_MS);
  browser.setDefaultNavigationTimeout(UI_TIMEOUT_MS);
  page = browser.pages()[0] ?? (await browser.newPage());
});

afterAll(async () => {
  await browser?.close();
  await env?.teardown();
});

/** On failure, what the browser showed, in the test's temp folder. */
function screenshotOnFailure({ onTestFailed, task }: TestContext): void {
  onTestFailed(async () => {
    const path = join(scratch, `${task.name.replace(/[^a-z0-9]+/gi, '-')}.png`);
    await page.screenshot({ path, fullPage: true }).then(
      () => console.error(`webui test: screenshot of the failure in ${path}`),
      (error: unknown) => console.error(`webui test: no screenshot (${String(error)})`),
    );
  });
}

/** Waits until the page's main area shows every one of `texts` (the UI renders what it fetches when it arrives). */
async function expectShown(texts: readonly string[]): Promise<void> {
  for (const text of texts) {
    await expect.poll(() => page.locator('main').innerText(), { timeout: UI_TIMEOUT_MS, interval: 500 }).toContain(text);
  }
}

/** What a user does: the list's "Start Workflow" page, the three fields, the input JSON, submit. */
async function startFromUi(form: { readonly workflowId: string; readonly taskQueue: string; readonly type: string; readonly input: unknown }): Promise<void> {
  await page.goto(`${ui}/namespaces/default/workflows`);
  await page
    .getByRole('button', { name: 'Start Workflow', exact: true })
    .or(page.getByRole('link', { name: 'Start Workflow', exact: true }))
    .first()
    .click();
  await page.getByRole('heading', { name: 'Start Workflow' }).waitFor();
  await page.getByLabel('Workflow ID').fill(form.workflowId);
  await page.getByLabel('Task Queue').fill(form.taskQueue);
  await page.getByLabel('Workflow Type').fill(form.type);
  // The input is a CodeMirror editor, not a form field: focus it, replace its text. Inserting
  // the whole text at once keeps the editor's bracket auto-closing out of it, as a paste does.
  const editor = page.getByRole('textbox', { name: 'Data' });
  await editor.click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.insertText(JSON.stringify(form.input, null, 2));
  await page.getByRole('button', { name: 'Start Workflow', exact: true }).click();
  // The UI stays on the form; a notice confirms the start and links to the workflow's page.
  await startedNotice().waitFor();
}

const startedNotice = () => page.getByRole('link', { name: 'Workflow started successfully' });

/** From the list, as a user goes there: the workflow's own page. */
async function openFromList(workflowId: string): Promise<void> {
  await page.getByRole('link', { name: 'Workflows', exact: true }).first().click();
  await page.getByRole('link', { name: workflowId }).click();
  await page.getByRole('tab', { name: 'Memo' }).waitFor();
}

async function waitFor<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = UI_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The list row of a workflow, cell texts by column header. */
async function rowByColumn(workflowId: string): Promise<Record<string, string>> {
  const headers = await page.getByRole('columnheader').allInnerTexts();
  const cells = await page
    .getByRole('row')
    .filter({ has: page.getByRole('link', { name: workflowId }) })
    .getByRole('cell')
    .allInnerTexts();
  return Object.fromEntries(headers.map((header, i) => [header.trim(), (cells[i] ?? '').trim()]));
}

/** What `selfreward round --preset shapes --print` prints, as a user pastes it into the form. */
function shapesInput(): Record<string, unknown> {
  return { ...loadRoundConfig({ preset: 'shapes', root: REPO_ROOT }) };
}

describe('starting a round from the Web UI, with the real CPU worker running', () => {
  let deps: ActivityDependencies;
  let worker: Worker;
  let running: Promise<void>;

  beforeAll(async () => {
    deps = dependenciesFromEnvironment({ SELF_REWARD_STORE: join(scratch, 'store'), SELF_REWARD_WORK_DIR: join(scratch, 'work') });
    // No GPU worker: the round runs until its first model activity, which waits on the GPU queue.
    worker = await Worker.create({ ...workerOptions('cpu', deps, env.nativeConnection, 'default'), shutdownGraceTime: '5s' });
    running = worker.run();
  });

  afterAll(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running;
    await deps?.runtime.release();
  });

  it('the Start Workflow form starts selfRewardRound on the workflows queue with the typed JSON, and the UI shows it running', async (context) => {
    screenshotOnFailure(context);
    const workflowId = `round-webui-${randomUUID()}`;
    const input = shapesInput();
    await startFromUi({ workflowId, taskQueue: TASK_QUEUES.workflows, type: 'selfRewardRound', input });
    await startedNotice().click();

    const handle = env.client.workflow.getHandle(workflowId);
    // The worker ran the workflow code: it upserted the round number, checked the input (prepareRound,
    // pending for a moment on a busy host) and scheduled the shards' sampling.
    const description = await waitFor(
      'the round on the server',
      () => handle.describe().catch(() => null),
      (d) =>
        d !== null &&
        d.typedSearchAttributes.get(SEARCH_ATTRIBUTES.round) === 1 &&
        (d.raw.pendingActivities ?? []).some((a) => a.activityType?.name !== 'prepareRound'),
    );
    expect(description?.type).toBe('selfRewardRound');
    expect(description?.taskQueue).toBe(TASK_QUEUES.workflows);
    expect(description?.status.name).toBe('RUNNING');
    expect(description?.raw.pendingActivities?.map((a) => a.activityType?.name)).toEqual(['sampleShard', 'sampleShard']);
    const startEvent = (await handle.fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes;
    const payloads = startEvent?.input?.payloads ?? [];
    expect(payloads).toHaveLength(1);
    expect(defaultPayloadConverter.fromPayload(payloads[0]!)).toEqual(input);

    // The page shows the round as it was when the page loaded, which may be before the worker's
    // first workflow task: load it again now that the server has what the checks below look for.
    await page.getByRole('tab', { name: 'Memo' }).waitFor();
    expect(page.url()).toContain(`/workflows/${workflowId}/`);
    await page.reload();
    await expectShown([workflowId, 'selfRewardRound', TASK_QUEUES.workflows]);
    await expect.poll(() => page.getByText('Running', { exact: true }).count(), { timeout: UI_TIMEOUT_MS }).toBeGreaterThan(0);
    await page.getByRole('tab', { name: /Pending Activities/ }).click();
    // The tab shows neither the activity's task queue nor why it waits; two shards, two samplings.
    await expect.poll(() => page.getByText('sampleShard', { exact: true }).count(), { timeout: UI_TIMEOUT_MS }).toBe(2);
    await page.getByRole('tab', { name: 'Search Attributes' }).click();
    await expectShown([`"${SEARCH_ATTRIBUTES.round.name}": 1`]);
    // The live progress: the workflow's `progress` query, answered by the worker, is the one offered.
    await page.getByRole('tab', { name: 'Queries' }).click();
    await page.getByRole('button', { name: 'Run Query' }).click();
    await expectShown(['"stage": "sample"', '"total": 2']);
    await page.screenshot({ path: join(scratch, 'running-round.png'), fullPage: true });
  });

  it('an invalid input typed into the form fails the round at once, naming the field, on the server and in the UI', async (context) => {
    screenshotOnFailure(context);
    const workflowId = `round-webui-invalid-${randomUUID()}`;
    await startFromUi({ workflowId, taskQueue: TASK_QUEUES.workflows, type: 'selfRewardRound', input: { ...shapesInput(), samplesPerPrompt: 0 } });

    const error = await env.client.workflow
      .getHandle(workflowId)
      .result()
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const cause = (error as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('InvalidInput');
    expect((cause as ApplicationFailure).nonRetryable).toBe(true);
    const message = 'samplesPerPrompt: expected an integer in [1, 1000], got 0';
    expect((cause as ApplicationFailure).message).toContain(message);

    await openFromList(workflowId);
    await expectShown([message]);
    await expect.poll(() => page.getByText('Failed', { exact: true }).count(), { timeout: UI_TIMEOUT_MS }).toBeGreaterThan(0);
  });
});

describe('a round with its figures, no worker running', () => {
  it('the workflow list shows the search attributes as columns and the detail page shows them and the memo', async (context) => {
    screenshotOnFailure(context);
    const workflowId = `round-webui-figures-${randomUUID()}`;
    // What workflows/round.ts upserts by the end of a round (test/round.test.ts checks that it
    // does), set at the start here and with no worker polling: the UI shows them without a whole
    // round having to run first.
    const memo = {
      winRate: 0.625,
      winRateInterval: [0.5, 0.75],
      meanClipBase: 0.25,
      meanClipTuned: 0.3125,
      accuracyBase: 0.375,
      accuracyTuned: 0.5,
      kept: 12,
      dropped: 4,
      report: 's3://self-reward/rounds/report.html',
    };
    await env.client.workflow.start('selfRewardRound', {
      taskQueue: TASK_QUEUES.workflows,
      workflowId,
      args: [{ ...shapesInput(), round: 2 }],
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.round, value: 2 },
        { key: SEARCH_ATTRIBUTES.classes, value: ['circle', 'square'] },
        { key: SEARCH_ATTRIBUTES.winRate, value: 0.625 },
      ],
      memo,
    });

    // The list shows only the standard columns at first: a user adds the rounds' with "Configure Columns".
    await page.goto(`${ui}/namespaces/default/workflows`);
    await page.getByRole('link', { name: workflowId }).waitFor();
    await page.getByRole('button', { name: 'Configure Columns' }).click();
    for (const key of Object.values(SEARCH_ATTRIBUTES)) await page.getByRole('button', { name: `Add ${key.name} column` }).click();
    await page.getByRole('button', { name: 'Close Workflows Table configuration' }).click();
    await expect
      .poll(() => rowByColumn(workflowId), { timeout: UI_TIMEOUT_MS })
      .toMatchObject({
        [SEARCH_ATTRIBUTES.round.name]: '2',
        [SEARCH_ATTRIBUTES.classes.name]: expect.stringMatching(/circle.*square/s),
        [SEARCH_ATTRIBUTES.winRate.name]: '0.625',
      });
    // Added columns go last, past the table's right edge.
    await page.getByRole('columnheader', { name: SEARCH_ATTRIBUTES.winRate.name }).scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(scratch, 'list-columns.png'), fullPage: true });

    await page.getByRole('link', { name: workflowId }).click();
    await page.getByRole('tab', { name: 'Search Attributes' }).click();
    await expectShown([`"${SEARCH_ATTRIBUTES.round.name}": 2`, `"${SEARCH_ATTRIBUTES.winRate.name}": 0.625`, '"circle"', '"square"']);
    await page.getByRole('tab', { name: 'Memo' }).click();
    await expectShown(['"winRate": 0.625', '"kept": 12', `"report": "${memo.report}"`]);
    await page.screenshot({ path: join(scratch, 'memo.png'), fullPage: true });
  });
});

describe('resetting a finished round and the nightly schedules, with real workers', () => {
  let deps: ActivityDependencies;
  let input: Record<string, unknown>;

  beforeAll(async () => {
    const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
    input = tinyRoundInput(generator, detector, { sampling: { steps: 2 }, lora: { maxSteps: 2, batchSize: 2 } });
    // The rounds the tests above started on the full shapes pack would keep these workers busy for long.
    for await (const running of env.client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
      await env.client.workflow.getHandle(running.workflowId, running.runId).terminate('the earlier Web UI tests are done with it');
    }
    deps = testDependencies(join(scratch, 'reset'));
  });

  afterAll(async () => {
    await deps?.runtime.release();
  });

  const withWorkers = <T>(run: () => Promise<T>): Promise<T> => withRoundWorkers(env, deps, run);

  it("Reset to after curation from the Reset dialog retrains into the new run's keys; the old run's LoRA is untouched", async (context) => {
    screenshotOnFailure(context);
    const workflowId = `round-webui-reset-${randomUUID()}`;
    const selfReward = new SelfRewardClient(env.client);
    const resetRunId = await withWorkers(async () => {
      const first = await (await selfReward.startRound(input, { workflowId })).result();
      const oldLora = `${first.training.lora}unet/model.onnx`;
      const oldBytes = await deps.store.get(oldLora);
      const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
      const curated = events.find((e) => e.activityTaskCompletedEventAttributes && activityTypeOf(events, e) === 'curateDataset');
      const afterCuration = events.find((e) => e.workflowTaskCompletedEventAttributes && Number(e.eventId) > Number(curated?.eventId));
      expect(afterCuration, 'a workflow task completed after curation').toBeDefined();

      // As a user does it: the round's page, Reset, the event after curation, a reason, Confirm.
      await page.goto(`${ui}/namespaces/default/workflows/${workflowId}`);
      await page.getByRole('button', { name: 'Reset', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Reset Workflow' });
      await dialog.getByTestId('workflow-reset-event-id-select-button').click();
      await page.getByRole('option', { name: `${String(afterCuration!.eventId)} - WorkflowTaskCompleted`, exact: true }).click();
      await dialog.locator('#reset-reason').fill('retrain after curation');
      await dialog.getByRole('button', { name: 'Confirm' }).click();

      // The reset run is the workflow's newest: it retrains, evaluates and reports under its own run.
      const reset = await waitFor(
        'the reset run',
        () => env.client.workflow.getHandle(workflowId).describe(),
        (d) => d.runId !== first.root.split('/')[2],
      );
      const second = await selfReward.round(workflowId).result();
      expect(second.root).toBe(roundRoot(workflowId, reset.runId, 1));
      expect(second.training.lora.startsWith(second.root)).toBe(true);
      expect(second.dataset.dataset).toBe(first.dataset.dataset);
      const scheduled = ((await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? []).filter((e) => e.activityTaskScheduledEventAttributes);
      expect(scheduled.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).slice(-5)).toEqual([
        'trainLora',
        'sampleReferences',
        'evaluateShard',
        'evaluateRound',
        'writeReport',
      ]);
      expect((await deps.store.get(oldLora)).equals(oldBytes)).toBe(true);
      expect(await deps.store.exists(`${second.training.lora}unet/model.onnx`)).toBe(true);
      expect((await deps.store.get(second.report.report)).toString()).toContain(`a reset of run <code>${first.root.split('/')[2]}</code>`);
      return reset.runId;
    });
    // The reset run's page: finished, under the same workflow id.
    await page.goto(`${ui}/namespaces/default/workflows/${workflowId}/${resetRunId}`);
    await expectShown([resetRunId.slice(0, 8), 'COMPLETED']);
    await page.screenshot({ path: join(scratch, 'reset-round.png'), fullPage: true });
  });

  it("the Schedules page lists a line's nightly schedule", async (context) => {
    screenshotOnFailure(context);
    const line = `webui-${randomUUID().slice(0, 8)}`;
    const selfReward = new SelfRewardClient(env.client);
    const schedule = await selfReward.createNightlySchedule({ line, round: input }, { cron: ['0 2 * * *'], timezone: 'Europe/Paris', paused: true });
    try {
      await page.goto(`${ui}/namespaces/default/schedules`);
      await expectShown([schedule.scheduleId]);
      await page.getByRole('link', { name: schedule.scheduleId }).click();
      await expectShown(['selfRewardNightly', 'Europe/Paris']);
      await page.screenshot({ path: join(scratch, 'schedule.png'), fullPage: true });
    } finally {
      await schedule.delete();
    }
  });
});

/** The activity type of an activity event, from the scheduled event it refers to. */
function activityTypeOf(
  events: readonly { eventId?: unknown; activityTaskScheduledEventAttributes?: { activityType?: { name?: string | null } | null } | null }[],
  event: { activityTaskCompletedEventAttributes?: { scheduledEventId?: unknown } | null },
): string | undefined {
  const scheduledId = String(event.activityTaskCompletedEventAttributes?.scheduledEventId);
  return events.find((e) => String(e.eventId) === scheduledId)?.activityTaskScheduledEventAttributes?.activityType?.name ?? undefined;
}
