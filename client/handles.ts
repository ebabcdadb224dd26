/** Typed handles on the plugin's workflows: rounds, campaigns, nights and model lines. */
import type { WorkflowHandle } from '@temporalio/client';
import type { LoadedDataConverter, Payload } from '@temporalio/common';

import { lineQuery, promoteUpdate, rollbackUpdate, type LineEvent, type LineState } from '../contract/lines.js';
import { withLiveProgress, type RoundProgress, type StageProgress } from '../contract/progress.js';
import {
  progressQuery,
  roundsQuery,
  stopAfterRoundSignal,
  type CampaignResult,
  type NightResult,
  type RoundFigures,
  type RoundResult,
} from '../contract/workflows.js';
import type { selfRewardCampaign, selfRewardLine, selfRewardNightly, selfRewardRound } from '../workflows/index.js';

export interface WatchOptions<P> {
  /** Called with the live figures every `intervalMs` (default 1000) until the workflow closes. */
  readonly onProgress?: (progress: P) => void;
  readonly intervalMs?: number;
}

/** Polls `read` while `result` is pending, handing each answer to `onProgress`; a failed read is skipped. */
async function watch<T, P>(result: Promise<T>, read: () => Promise<P>, options: WatchOptions<P>): Promise<T> {
  const { onProgress, intervalMs = 1000 } = options;
  if (onProgress === undefined) return result;
  let done = false;
  const settled = result.finally(() => {
    done = true;
  });
  while (!done) {
    await read().then(onProgress, () => undefined);
    await Promise.race([settled.catch(() => undefined), new Promise((r) => setTimeout(r, intervalMs))]);
  }
  return settled;
}

/** The first of some payloads, through the client's codecs and payload converter; undefined when there is none. */
async function firstPayload(converter: LoadedDataConverter, payloads: readonly Payload[] | null | undefined): Promise<unknown> {
  const first = payloads?.[0];
  if (first === undefined) return undefined;
  let decoded: Payload[] = [first];
  for (const codec of [...converter.payloadCodecs].reverse()) decoded = await codec.decode(decoded);
  return converter.payloadConverter.fromPayload(decoded[0]!);
}

export class RoundHandle {
  constructor(readonly workflow: WorkflowHandle<typeof selfRewardRound>) {}

  get workflowId(): string {
    return this.workflow.workflowId;
  }

  /** What finished stages did (the round's query) with how far its running activities are (their heartbeats). */
  async progress(): Promise<RoundProgress> {
    const [settled, description] = await Promise.all([this.workflow.query(progressQuery), this.workflow.describe()]);
    const { loadedDataConverter } = this.workflow.client.options;
    const running = await Promise.all((description.raw.pendingActivities ?? []).map((a) => firstPayload(loadedDataConverter, a.heartbeatDetails?.payloads)));
    return withLiveProgress(
      settled,
      running.filter((p): p is StageProgress => typeof p === 'object' && p !== null && 'stage' in p),
    );
  }

  result(options: WatchOptions<RoundProgress> = {}): Promise<RoundResult> {
    return watch(this.workflow.result(), () => this.progress(), options);
  }

  /** Running activities stop (the trainer with a checkpoint); nothing partial is published. */
  async cancel(): Promise<void> {
    await this.workflow.cancel();
  }
}

export class CampaignHandle {
  constructor(readonly workflow: WorkflowHandle<typeof selfRewardCampaign>) {}

  get workflowId(): string {
    return this.workflow.workflowId;
  }

  rounds(): Promise<readonly RoundFigures[]> {
    return this.workflow.query(roundsQuery);
  }

  result(options: WatchOptions<readonly RoundFigures[]> = {}): Promise<CampaignResult> {
    return watch(this.workflow.result(), () => this.rounds(), options);
  }

  /** Finishes the running round, then stops. */
  async stopAfterCurrentRound(): Promise<void> {
    await this.workflow.signal(stopAfterRoundSignal);
  }

  async cancel(): Promise<void> {
    await this.workflow.cancel();
  }
}

export class NightHandle {
  constructor(
    readonly workflow: WorkflowHandle<typeof selfRewardNightly>,
    /** The night's round, a child workflow with its own progress. */
    readonly round: RoundHandle,
  ) {}

  get workflowId(): string {
    return this.workflow.workflowId;
  }

  /** The night's round's progress (the round starts once the night has opened its line). */
  result(options: WatchOptions<RoundProgress> = {}): Promise<NightResult> {
    return watch(this.workflow.result(), () => this.round.progress(), options);
  }

  async cancel(): Promise<void> {
    await this.workflow.cancel();
  }
}

export class LineHandle {
  constructor(readonly workflow: WorkflowHandle<typeof selfRewardLine>) {}

  /** The champion, the counts and the newest events (the whole history is in the store, `lines/<name>/history/`). */
  state(): Promise<LineState> {
    return this.workflow.query(lineQuery);
  }

  /** Makes the challenger recorded at history event `seq` the champion. */
  promote(seq: number, by: string, reason: string): Promise<LineEvent> {
    return this.workflow.executeUpdate(promoteUpdate, { args: [{ seq, by, reason }] });
  }

  /** Restores champion `version` (its UNet, dataset and figures) as a new version. */
  rollback(version: number, by: string, reason: string): Promise<LineEvent> {
    return this.workflow.executeUpdate(rollbackUpdate, { args: [{ version, by, reason }] });
  }
}
