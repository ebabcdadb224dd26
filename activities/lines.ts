/**
 * Model lines' activities: the line workflow's records in the store (loaded when its workflow
 * starts, an event published per change), and a night's two calls to its line, which go through
 * the worker's Temporal client because a workflow cannot send another one an update.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WithStartWorkflowOperation, WorkflowUpdateFailedError } from '@temporalio/client';

import { lineKeys } from '../contract/keys.js';
import {
  lineWorkflowId,
  LINE_WORKFLOW_TYPE,
  openLineUpdate,
  RECENT_EVENTS,
  submitChallengerUpdate,
  type Champion,
  type LineActivities,
  type LineEvent,
  type LineIdentity,
  type LineRecord,
  type LineState,
} from '../contract/lines.js';
import { TASK_QUEUES } from '../contract/workers.js';
import { findJson, putJson } from '../store/store.js';
import type { selfRewardLine } from '../workflows/line.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';

/** The newest events of a line, newest last. */
async function recentEvents(deps: ActivityDependencies, name: string): Promise<LineEvent[]> {
  const keys = (await deps.store.list(lineKeys.events(name))).slice(-RECENT_EVENTS);
  const events = await Promise.all(keys.map((key) => findJson<LineEvent>(deps.store, key)));
  return events.filter((e): e is LineEvent => e !== null);
}

/** A new line: its champion is the base generator, and its history begins with that. */
function created(identity: LineIdentity, at: string): { line: LineRecord; champion: Champion; event: LineEvent } {
  const champion: Champion = { version: 1, tunedUnet: null, dataset: null, origin: 'the base generator the line starts from', againstBase: null, since: at };
  const event: LineEvent = {
    seq: 1,
    kind: 'created',
    at,
    by: lineWorkflowId(identity.name),
    verdict: 'applied',
    reasons: [`line "${identity.name}" created on ${identity.base}`],
    championBefore: 0,
    championAfter: 1,
    challenger: null,
  };
  return { line: { name: identity.name, base: identity.base, champion, events: 1, nights: 0 }, champion, event };
}

async function record(deps: ActivityDependencies, line: LineRecord, event: LineEvent): Promise<void> {
  await putJson(deps.store, lineKeys.event(line.name, event.seq), event);
  await putJson(deps.store, lineKeys.champion(line.name, line.champion.version), line.champion);
  await putJson(deps.store, lineKeys.current(line.name), line);
}

/** The update's failure as the night's own: a refusal by the line is not something a retry fixes. */
function lineRefusal(error: unknown): unknown {
  if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
    return badData('InvalidInput', error.cause.message, error.cause);
  }
  return error;
}

function lineStart(identity: LineIdentity) {
  return new WithStartWorkflowOperation<typeof selfRewardLine>(LINE_WORKFLOW_TYPE, {
    workflowId: lineWorkflowId(identity.name),
    taskQueue: TASK_QUEUES.workflows,
    args: [identity],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

export function createLineActivities(deps: ActivityDependencies): LineActivities {
  return {
    async loadLine(identity) {
      const stored = await findJson<LineRecord>(deps.store, lineKeys.current(identity.name));
      if (stored === null) {
        const fresh = created(identity, new Date().toISOString());
        await record(deps, fresh.line, fresh.event);
        return { ...fresh.line, recent: [fresh.event] };
      }
      if (stored.base !== identity.base) {
        throw badData('InvalidInput', `line "${identity.name}" improves ${stored.base}; this names ${identity.base} (a line keeps one base generator)`);
      }
      return { ...stored, recent: await recentEvents(deps, identity.name) };
    },

    async recordLineEvent({ line, event }) {
      await record(deps, line, event);
      if (event.kind === 'challenger' && event.challenger !== null && event.verdict !== 'applied') {
        deps.metrics.lineChallengerWinRate.record(event.challenger.againstChampion.winRate, { line: line.name });
        deps.metrics.lineVerdicts.record(1, { line: line.name, verdict: event.verdict });
      }
    },

    async readLineEvent({ name, seq }) {
      return findJson<LineEvent>(deps.store, lineKeys.event(name, seq));
    },

    async readChampion({ name, version }) {
      return findJson<Champion>(deps.store, lineKeys.champion(name, version));
    },

    async openLine(identity): Promise<LineState> {
      return Context.current()
        .client.workflow.executeUpdateWithStart(openLineUpdate, { args: [identity], startWorkflowOperation: lineStart(identity) })
        .catch((error: unknown) => {
          throw lineRefusal(error);
        });
    },

    async submitChallenger({ name, base, challenger, againstVersion }): Promise<LineEvent> {
      const identity = { name, base };
      return Context.current()
        .client.workflow.executeUpdateWithStart(submitChallengerUpdate, {
          args: [{ challenger, againstVersion }],
          startWorkflowOperation: lineStart(identity),
        })
        .catch((error: unknown) => {
          throw lineRefusal(error);
        });
    },
  };
}
