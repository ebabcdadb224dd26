/**
 * Model lines: a named "current model" (the champion) that nights improve, and the history of
 * every challenger with its verdict. A line is one long-running workflow (`selfRewardLine`,
 * id `line-<name>`) that serialises every change to its champion, and a set of records in the
 * store (`lines/<name>/`): `current.json`, one `champions/<version>.json` per champion ever, and
 * one `history/<seq>.json` per event, written before `current.json` (manifest last).
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';

import type { GateVerdict } from '../config/gate.js';
import type { Comparison } from './activities.js';

/** The generator a line's nights sample from and are compared against. */
export interface Champion {
  /** 1 for the base generator the line starts from; each change of champion adds one. */
  readonly version: number;
  /** The fused UNet's LoRA prefix (a round's `training.lora`), or null: the base generator itself. */
  readonly tunedUnet: string | null;
  /** The curated dataset it was trained on (its nights' images accumulate through it), or null for the base. */
  readonly dataset: string | null;
  /** How it became the champion. */
  readonly origin: string;
  /** Its figures against the line's base when it was a challenger, or null for the base. */
  readonly againstBase: Comparison | null;
  /** ISO time it became the champion. */
  readonly since: string;
}

/** What a night proposes: its tuned generator, the data behind it, and how it measured. */
export interface Challenger {
  /** The night's workflow id and its round's artifact folder. */
  readonly night: string;
  readonly round: string;
  readonly lora: string;
  readonly dataset: string;
  /** Against the champion it was sampled from (the round's parent, or the base on the first night). */
  readonly againstChampion: Comparison;
  readonly againstBase: Comparison;
  /** The line's gate, read against the champion. */
  readonly gate: GateVerdict;
}

export type LineEventKind = 'created' | 'challenger' | 'promotion' | 'rollback';

/** One event of a line's history; each names the champion before and after it. */
export interface LineEvent {
  readonly seq: number;
  readonly kind: LineEventKind;
  readonly at: string;
  /** Who asked: a night's workflow id, or the person behind a manual promotion or rollback. */
  readonly by: string;
  /** `promoted` or `rejected` for a challenger; `applied` for a creation, promotion or rollback. */
  readonly verdict: 'promoted' | 'rejected' | 'applied';
  /** Why, in sentences: the gate's reasons, a stale champion, a person's words. */
  readonly reasons: readonly string[];
  readonly championBefore: number;
  readonly championAfter: number;
  readonly challenger: Challenger | null;
}

/** What a line holds in memory and answers its query with; the whole history is in the store. */
export interface LineState {
  readonly name: string;
  /** The base generator folder every night of the line starts from. */
  readonly base: string;
  readonly champion: Champion;
  /** Events so far (the newest has this seq). */
  readonly events: number;
  /** Challengers so far: the next night is night `nights + 1`. */
  readonly nights: number;
  /** The newest events, newest last (at most `RECENT_EVENTS`). */
  readonly recent: readonly LineEvent[];
}

export const RECENT_EVENTS = 20;

/** A line's workflow input: its name and base; a line is created on first use. */
export interface LineIdentity {
  readonly name: string;
  readonly base: string;
}

export interface ChallengerSubmission {
  readonly challenger: Challenger;
  /** The champion version the night sampled from and measured against: a promotion against a champion that has moved since is stale and refused. */
  readonly againstVersion: number;
}

export interface PromoteRequest {
  /** The history event of the challenger to make champion. */
  readonly seq: number;
  readonly by: string;
  readonly reason: string;
}

export interface RollbackRequest {
  /** The champion version to restore (its UNet, dataset and figures, unchanged). */
  readonly version: number;
  readonly by: string;
  readonly reason: string;
}

/** What the line's workflow keeps in the store (`current.json`): its state without the recent events. */
export type LineRecord = Omit<LineState, 'recent'>;

export interface RecordLineEventRequest {
  readonly line: LineRecord;
  readonly event: LineEvent;
}

/** The activities of model lines: the line workflow's records in the store, and a night's calls to its line. */
export interface LineActivities {
  /** The line's state from the store, creating the line (champion: the base) when it has no records yet. */
  loadLine(identity: LineIdentity): Promise<LineState>;
  /** Publishes an event, and the champion it leaves, before `current.json`. */
  recordLineEvent(request: RecordLineEventRequest): Promise<void>;
  readLineEvent(request: { readonly name: string; readonly seq: number }): Promise<LineEvent | null>;
  readChampion(request: { readonly name: string; readonly version: number }): Promise<Champion | null>;
  /** A night opens its line (starting its workflow if needed) and reads the champion. */
  openLine(identity: LineIdentity): Promise<LineState>;
  /** A night submits its challenger to its line. */
  submitChallenger(request: LineIdentity & ChallengerSubmission): Promise<LineEvent>;
}

/** The line workflow's type, for starting it by name where its function cannot be imported (activities). */
export const LINE_WORKFLOW_TYPE = 'selfRewardLine';

/** The line workflow's id for a line name. */
export function lineWorkflowId(name: string): string {
  return `line-${name}`;
}

/** The line's state once it has loaded from the store (updates wait for that; the first creates the line). */
export const openLineUpdate = defineUpdate<LineState, [LineIdentity]>('open');
/** A night's challenger: promoted when its gate passed and the champion has not moved since the night began. */
export const submitChallengerUpdate = defineUpdate<LineEvent, [ChallengerSubmission]>('submitChallenger');
/** Makes a recorded challenger the champion, whatever its gate said. */
export const promoteUpdate = defineUpdate<LineEvent, [PromoteRequest]>('promote');
/** Restores an earlier champion as the current one. */
export const rollbackUpdate = defineUpdate<LineEvent, [RollbackRequest]>('rollback');
export const lineQuery = defineQuery<LineState>('line');
