/**
 * The workflows' results and their message definitions (queries, signals). Clients, the CLI and
 * activities use these typed definitions, never names as strings.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';

import type { GateVerdict } from '../config/gate.js';
import type { CurateResult, EvaluateResult, JudgeShardResult, ReportResult, SampleShardResult, TrainResult } from './activities.js';
import type { LineEvent } from './lines.js';
import type { RoundProgress } from './progress.js';

export interface RoundResult {
  readonly round: number;
  /** Folder of every artifact of the round. */
  readonly root: string;
  readonly samples: readonly SampleShardResult[];
  readonly judged: readonly JudgeShardResult[];
  readonly dataset: CurateResult;
  readonly training: TrainResult;
  readonly evaluation: EvaluateResult;
  /** The promotion gate's verdict, when the input has a gate. */
  readonly gate: GateVerdict | null;
  readonly report: ReportResult;
}

export interface RoundFigures {
  readonly round: number;
  readonly workflowId: string;
  readonly winRate: number;
  readonly winRateInterval: readonly [number, number];
  readonly meanClipTuned: number;
  readonly accuracyTuned: number;
  readonly kept: number;
  /** The round's LoRA prefix: the next round samples with its UNet. */
  readonly lora: string;
  readonly report: string;
}

export interface CampaignResult {
  readonly rounds: readonly RoundFigures[];
  readonly stopReason: string;
}

/** Carried across a campaign's continue-as-new: the rounds done so far and whether a stop was asked for. */
export interface CampaignCarry {
  readonly rounds: readonly RoundFigures[];
  readonly stopRequested: boolean;
}

export interface NightResult {
  readonly line: string;
  readonly night: number;
  /** The champion version the night sampled from and was measured against. */
  readonly championBefore: number;
  /** The line's event for this night's challenger: promoted or rejected, and why. */
  readonly decision: LineEvent;
  readonly round: RoundResult;
}

/** A round's live figures (`selfreward status`, the Web UI's Queries tab). */
export const progressQuery = defineQuery<RoundProgress>('progress');
/** A campaign's rounds so far. */
export const roundsQuery = defineQuery<readonly RoundFigures[]>('rounds');
/** A campaign finishes the round it runs, then stops. */
export const stopAfterRoundSignal = defineSignal('stopAfterCurrentRound');
