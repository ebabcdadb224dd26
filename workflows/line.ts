/**
 * `selfRewardLine`: one model line's champion, kept by one long-running workflow so that every
 * change to it is serialised. Nights open the line and submit their challengers; people promote
 * a recorded challenger or roll back to an earlier champion (updates, so the Web UI can send
 * them). Each change is published to the store (event, champion, then `current.json`) before
 * the update returns; the store is what the line reloads from if its workflow is ever restarted.
 */
import { allHandlersFinished, ApplicationFailure, condition, continueAsNew, proxyActivities, setHandler, upsertMemo, workflowInfo } from '@temporalio/workflow';

import {
  lineQuery,
  openLineUpdate,
  promoteUpdate,
  RECENT_EVENTS,
  rollbackUpdate,
  submitChallengerUpdate,
  type Champion,
  type LineActivities,
  type LineEvent,
  type LineIdentity,
  type LineState,
} from '../contract/lines.js';

const lines = proxyActivities<LineActivities>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', nonRetryableErrorTypes: ['InvalidInput', 'MissingArtifact'] },
});

/** Updates handled in one run before it continues as new, so its history stays short. */
const UPDATES_PER_RUN = 500;

function refused(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'InvalidInput', message, nonRetryable: true });
}

export async function selfRewardLine(identity: LineIdentity, carried?: LineState): Promise<never> {
  let state: LineState | undefined = carried;
  let busy = false;
  let handled = 0;

  /** One change at a time, in arrival order: each reads the champion the previous one left. */
  async function exclusive<T>(change: (current: LineState) => Promise<T>): Promise<T> {
    // One change of `busy` can wake several waiters at once: each checks again when it runs, and
    // only the first to run finds the line free.
    while (state === undefined || busy) await condition(() => state !== undefined && !busy);
    busy = true;
    try {
      return await change(state!);
    } finally {
      busy = false;
      handled += 1;
    }
  }

  /** Publishes an event (and the champion after it), then makes it the line's state. */
  async function apply(current: LineState, event: Omit<LineEvent, 'seq' | 'at' | 'championBefore' | 'championAfter'>, champion: Champion): Promise<LineEvent> {
    const recorded: LineEvent = {
      ...event,
      seq: current.events + 1,
      at: new Date().toISOString(),
      championBefore: current.champion.version,
      championAfter: champion.version,
    };
    const next = { ...current, champion, events: recorded.seq, nights: current.nights + (event.kind === 'challenger' ? 1 : 0) };
    await lines.recordLineEvent({ line: { name: next.name, base: next.base, champion, events: next.events, nights: next.nights }, event: recorded });
    state = { ...next, recent: [...current.recent, recorded].slice(-RECENT_EVENTS) };
    upsertMemo({ line: state.name, base: state.base, champion: champion.version, championUnet: champion.tunedUnet, events: state.events });
    return recorded;
  }

  const nextChampion = (current: LineState, from: Omit<Champion, 'version' | 'since'>): Champion => ({
    ...from,
    version: current.champion.version + 1,
    since: new Date().toISOString(),
  });

  setHandler(lineQuery, () => {
    if (state === undefined) throw new Error('the line is still loading');
    return state;
  });

  setHandler(
    openLineUpdate,
    async ({ name, base }) => {
      await condition(() => state !== undefined);
      if (base !== state!.base) throw refused(`line "${name}" improves ${state!.base}; this night names ${base} (a line keeps one base generator)`);
      return state!;
    },
    { validator: ({ name }) => checkName(name) },
  );

  setHandler(submitChallengerUpdate, ({ challenger, againstVersion }) =>
    exclusive(async (current) => {
      const stale = againstVersion !== current.champion.version;
      const promoted = challenger.gate.passed && !stale;
      const reasons = stale
        ? [...challenger.gate.reasons, `stale: the champion moved from version ${againstVersion} to ${current.champion.version} while this night ran`]
        : challenger.gate.reasons;
      const champion = promoted
        ? nextChampion(current, {
            tunedUnet: challenger.lora,
            dataset: challenger.dataset,
            origin: `promoted from night ${challenger.night}`,
            againstBase: challenger.againstBase,
          })
        : current.champion;
      return apply(current, { kind: 'challenger', by: challenger.night, verdict: promoted ? 'promoted' : 'rejected', reasons, challenger }, champion);
    }),
  );

  setHandler(
    promoteUpdate,
    ({ seq, by, reason }) =>
      exclusive(async (current) => {
        const event = await lines.readLineEvent({ name: current.name, seq });
        if (event === null || event.challenger === null) throw refused(`line "${current.name}" has no challenger at history event ${seq}`);
        const { challenger } = event;
        if (challenger.lora === current.champion.tunedUnet)
          throw refused(`the challenger of event ${seq} is already the champion (version ${current.champion.version})`);
        const champion = nextChampion(current, {
          tunedUnet: challenger.lora,
          dataset: challenger.dataset,
          origin: `promoted by ${by} from event ${seq} (night ${challenger.night})`,
          againstBase: challenger.againstBase,
        });
        return apply(current, { kind: 'promotion', by, verdict: 'applied', reasons: [reason], challenger }, champion);
      }),
    { validator: ({ seq, by, reason }) => checkManual(seq, by, reason, 'seq') },
  );

  setHandler(
    rollbackUpdate,
    ({ version, by, reason }) =>
      exclusive(async (current) => {
        if (version === current.champion.version) throw refused(`version ${version} is the champion already`);
        const earlier = version < current.champion.version ? await lines.readChampion({ name: current.name, version }) : null;
        if (earlier === null)
          throw refused(`line "${current.name}" has no champion version ${version} to restore (versions 1 to ${current.champion.version - 1})`);
        const champion = nextChampion(current, { ...earlier, origin: `version ${version} restored by ${by}` });
        return apply(current, { kind: 'rollback', by, verdict: 'applied', reasons: [reason], challenger: null }, champion);
      }),
    { validator: ({ version, by, reason }) => checkManual(version, by, reason, 'version') },
  );

  state ??= await lines.loadLine(identity);
  upsertMemo({ line: state.name, base: state.base, champion: state.champion.version, championUnet: state.champion.tunedUnet, events: state.events });
  await condition(() => handled >= UPDATES_PER_RUN || workflowInfo().continueAsNewSuggested);
  await condition(() => !busy && allHandlersFinished());
  return continueAsNew<typeof selfRewardLine>(identity, state);
}

function checkName(name: unknown): void {
  if (typeof name !== 'string' || name === '') throw refused('name: expected the line name');
}

/** A manual change names what it changes, who asks and why; those go into the line's history. */
function checkManual(target: unknown, by: unknown, reason: unknown, field: string): void {
  if (typeof target !== 'number' || !Number.isInteger(target) || target < 1) throw refused(`${field}: expected an integer >= 1, got ${JSON.stringify(target)}`);
  if (typeof by !== 'string' || by.trim() === '') throw refused('by: expected who asks for the change');
  if (typeof reason !== 'string' || reason.trim() === '') throw refused('reason: expected why (it goes into the line history)');
}
