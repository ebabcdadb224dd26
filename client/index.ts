/**
 * Typed access to everything the plugin runs, for scripts and for the `selfreward` command
 * line, which is built on it: rounds, campaigns and nights (each input checked here first,
 * naming every bad field), model lines (champion, history, promotion, rollback) and the
 * Schedules that start nights.
 *
 *   const selfReward = await SelfRewardClient.connect();
 *   const round = await selfReward.startRound(input);
 *   const result = await round.result({ onProgress: (p) => console.log(p.stage) });
 */
import { randomUUID } from 'node:crypto';

import { Client, Connection, WithStartWorkflowOperation, type ClientInterceptors, type ScheduleHandle } from '@temporalio/client';

import { validateCampaignInput, type CampaignInput } from '../config/campaign.js';
import { validateNightlyInput, type NightlyInput } from '../config/nightly.js';
import { fromEnvironment } from '../config/environment.js';
import { temporalConnection } from '../config/temporalConnection.js';
import { validateRoundInput, type RoundInput } from '../config/round.js';
import { describeErrors, type Validation } from '../config/schema.js';
import { TASK_QUEUES } from '../contract/workers.js';
import { lineWorkflowId, openLineUpdate, type LineIdentity } from '../contract/lines.js';
import { selfRewardCampaign, selfRewardLine, selfRewardNightly, selfRewardRound } from '../workflows/index.js';
import { CampaignHandle, LineHandle, NightHandle, RoundHandle } from './handles.js';
import { nightlySchedule, type NightlyScheduleOptions } from './schedules.js';

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
  /** The Temporal client's interceptors, such as tracing's (`startTracing(...).clientInterceptors`). */
  readonly interceptors?: ClientInterceptors;
}

export interface StartOptions {
  /** The workflow id; a new one by default. Starting an id that is running fails. */
  readonly workflowId?: string;
}

function checked<T>(validation: Validation<T>, what: string): T {
  if (!validation.ok) throw new InvalidInputError(`${what}: ${describeErrors(validation.errors)}`);
  return validation.value;
}

export type WorkflowKind = 'round' | 'campaign' | 'nightly' | 'line';

export class SelfRewardClient {
  constructor(readonly temporal: Client) {}

  /** Connects as the environment says (TEMPORAL_ADDRESS, TLS or an API key: config/environment.ts); `options` override the address and namespace. */
  static async connect(options: ConnectOptions = {}): Promise<SelfRewardClient> {
    const settings = { ...temporalConnection(), ...(options.address === undefined ? {} : { address: options.address }) };
    const connection = await Connection.connect(settings).catch((error: Error) => {
      throw new ConnectionError(
        `cannot reach Temporal at ${settings.address} (${error.message}); start the stack with \`selfreward stack\`, or set TEMPORAL_ADDRESS (and TEMPORAL_TLS_* or TEMPORAL_API_KEY for a server that needs them)`,
      );
    });
    const namespace = options.namespace ?? fromEnvironment(process.env, 'TEMPORAL_NAMESPACE');
    return new SelfRewardClient(new Client({ connection, namespace, interceptors: options.interceptors }));
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

  /** Starts one night of a model line now (what its Schedule does at its hour). */
  async startNightly(input: NightlyInput | unknown, options: StartOptions = {}): Promise<NightHandle> {
    const nightly = checked(validateNightlyInput(input), 'nightly input');
    const workflowId = options.workflowId ?? `night-${nightly.line}-${randomUUID()}`;
    const workflow = await this.temporal.workflow.start(selfRewardNightly, { taskQueue: TASK_QUEUES.workflows, workflowId, args: [nightly] });
    return this.night(workflow.workflowId);
  }

  round(workflowId: string): RoundHandle {
    return new RoundHandle(this.temporal.workflow.getHandle<typeof selfRewardRound>(workflowId));
  }

  campaign(workflowId: string): CampaignHandle {
    return new CampaignHandle(this.temporal.workflow.getHandle<typeof selfRewardCampaign>(workflowId));
  }

  night(workflowId: string): NightHandle {
    return new NightHandle(this.temporal.workflow.getHandle<typeof selfRewardNightly>(workflowId), this.round(`${workflowId}-round`));
  }

  /** A model line by name; WorkflowNotFoundError from its calls until its first night (or `createLine`) made it. */
  line(name: string): LineHandle {
    return new LineHandle(this.temporal.workflow.getHandle<typeof selfRewardLine>(lineWorkflowId(name)));
  }

  /** Makes a line on a base generator, its champion the base itself; an existing line of that name and base is returned as it is. */
  async createLine(identity: LineIdentity): Promise<LineHandle> {
    await this.temporal.workflow.executeUpdateWithStart(openLineUpdate, {
      args: [identity],
      startWorkflowOperation: new WithStartWorkflowOperation(selfRewardLine, {
        workflowId: lineWorkflowId(identity.name),
        taskQueue: TASK_QUEUES.workflows,
        args: [identity],
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });
    return this.line(identity.name);
  }

  /** Creates the Schedule that starts a line's nights; the input is checked here first. */
  async createNightlySchedule(input: NightlyInput | unknown, options: NightlyScheduleOptions): Promise<ScheduleHandle> {
    return this.temporal.schedule.create(nightlySchedule(checked(validateNightlyInput(input), 'nightly input'), options));
  }

  /** Temporal's handle on a schedule: describe, pause, unpause, trigger, backfill, delete. */
  schedule(scheduleId: string): ScheduleHandle {
    return this.temporal.schedule.getHandle(scheduleId);
  }

  /** Which of the plugin's workflows an id runs, and its status; WorkflowNotFoundError when there is none. */
  async describe(workflowId: string): Promise<{ readonly kind: WorkflowKind | null; readonly status: string }> {
    const { type, status } = await this.temporal.workflow.getHandle(workflowId).describe();
    const kinds: Readonly<Record<string, WorkflowKind>> = {
      [selfRewardRound.name]: 'round',
      [selfRewardCampaign.name]: 'campaign',
      [selfRewardNightly.name]: 'nightly',
      [selfRewardLine.name]: 'line',
    };
    return { kind: kinds[type] ?? null, status: status.name };
  }
}

export { CampaignHandle, LineHandle, NightHandle, RoundHandle, type WatchOptions } from './handles.js';
export { nightlyScheduleId, OVERLAP_POLICIES, type NightlyScheduleOptions } from './schedules.js';
export type { RoundInput } from '../config/round.js';
export type { CampaignInput } from '../config/campaign.js';
export type { NightlyInput } from '../config/nightly.js';
export type { Champion, LineEvent, LineState } from '../contract/lines.js';
export type { RoundProgress } from '../contract/progress.js';
export type { CampaignResult, NightResult, RoundFigures, RoundResult } from '../contract/workflows.js';
