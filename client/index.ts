/**
 * Typed access to rounds and campaigns for scripts, and for the `selfreward` command line,
 * which is built on it: start one (its input checked here first, naming every bad field), watch
 * its progress, await its figures, cancel it.
 *
 *   const selfReward = await SelfRewardClient.connect();
 *   const round = await selfReward.startRound(input);
 *   const result = await round.result({ onProgress: (p) => console.log(p.stage) });
 */
import { randomUUID } from 'node:crypto';

import { Client, Connection, type WorkflowHandle } from '@temporalio/client';

import { validateCampaignInput, type CampaignInput } from '../config/campaign.js';
import { fromEnvironment } from '../config/environment.js';
import { validateRoundInput, type RoundInput } from '../config/round.js';
import { describeErrors, type Validation } from '../config/schema.js';
import { TASK_QUEUES } from '../contract/activities.js';
import type { RoundProgress } from '../contract/progress.js';
import { progressQuery, roundsQuery, stopAfterRoundSignal, type CampaignResult, type RoundFigures, type RoundResult } from '../contract/workflows.js';
import { selfRewardCampaign, selfRewardRound } from '../workflows/index.js';

/** An input the schema refuses; the message names every bad field and what it must be. */
export class InvalidInputError extends Error {
  override name = 'InvalidInputError';
}

/** The Temporal server cannot be reached. */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
}

export interface ConnectOptions {
  /** host:port of the Temporal frontend; default TEMPORAL_ADDRESS, else localhost:7233. */
  readonly address?: string;
  /** Default TEMPORAL_NAMESPACE, else `default`. */
  readonly namespace?: string;
}

export interface StartOptions {
  /** The workflow id; a new one by default. Starting an id that is running fails. */
  readonly workflowId?: string;
}

export interface WatchOptions<P> {
  /** Called with the live figures every `intervalMs` (default 1000) until the workflow closes. */
  readonly onProgress?: (progress: P) => void;
  readonly intervalMs?: number;
}

function checked<T>(validation: Validation<T>, what: string): T {
  if (!validation.ok) throw new InvalidInputError(`${what}: ${describeErrors(validation.errors)}`);
  return validation.value;
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

export class RoundHandle {
  constructor(readonly workflow: WorkflowHandle<typeof selfRewardRound>) {}

  get workflowId(): string {
    return this.workflow.workflowId;
  }

  progress(): Promise<RoundProgress> {
    return this.workflow.query(progressQuery);
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

export type WorkflowKind = 'round' | 'campaign';

export class SelfRewardClient {
  constructor(readonly temporal: Client) {}

  static async connect(options: ConnectOptions = {}): Promise<SelfRewardClient> {
    const address = options.address ?? fromEnvironment(process.env, 'TEMPORAL_ADDRESS');
    const connection = await Connection.connect({ address }).catch((error: Error) => {
      throw new ConnectionError(`cannot reach Temporal at ${address} (${error.message}); start the stack with \`selfreward stack\` or set TEMPORAL_ADDRESS`);
    });
    return new SelfRewardClient(new Client({ connection, namespace: options.namespace ?? fromEnvironment(process.env, 'TEMPORAL_NAMESPACE') }));
  }

  /** Starts `selfRewardRound`; the input is checked here first (InvalidInputError). */
  async startRound(input: RoundInput | unknown, options: StartOptions = {}): Promise<RoundHandle> {
    const round = checked(validateRoundInput(input), 'round input');
    const workflow = await this.temporal.workflow.start(selfRewardRound, {
      taskQueue: TASK_QUEUES.workflows,
      workflowId: options.workflowId ?? `round-${randomUUID()}`,
      args: [round],
    });
    return new RoundHandle(workflow);
  }

  /** Starts `selfRewardCampaign`; the input is checked here first (InvalidInputError). */
  async startCampaign(input: CampaignInput | unknown, options: StartOptions = {}): Promise<CampaignHandle> {
    const campaign = checked(validateCampaignInput(input), 'campaign input');
    const workflow = await this.temporal.workflow.start(selfRewardCampaign, {
      taskQueue: TASK_QUEUES.workflows,
      workflowId: options.workflowId ?? `campaign-${randomUUID()}`,
      args: [campaign],
    });
    return new CampaignHandle(workflow);
  }

  round(workflowId: string): RoundHandle {
    return new RoundHandle(this.temporal.workflow.getHandle<typeof selfRewardRound>(workflowId));
  }

  campaign(workflowId: string): CampaignHandle {
    return new CampaignHandle(this.temporal.workflow.getHandle<typeof selfRewardCampaign>(workflowId));
  }

  /** Which of the plugin's workflows an id runs, and its status; WorkflowNotFoundError when there is none. */
  async describe(workflowId: string): Promise<{ readonly kind: WorkflowKind | null; readonly status: string }> {
    const { type, status } = await this.temporal.workflow.getHandle(workflowId).describe();
    const kind = type === selfRewardRound.name ? 'round' : type === selfRewardCampaign.name ? 'campaign' : null;
    return { kind, status: status.name };
  }
}

export type { RoundInput } from '../config/round.js';
export type { CampaignInput } from '../config/campaign.js';
export type { RoundProgress } from '../contract/progress.js';
export type { CampaignResult, RoundFigures, RoundResult } from '../contract/workflows.js';
