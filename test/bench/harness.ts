/** What the round benchmarks share: a dev server in a scratch folder, a round's activity runs and history size, and their tables. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { WorkflowHandle } from '@temporalio/client';

import { startTemporal } from '../../cli/servers.js';
import { freePort } from '../servers.js';

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

export interface BenchServer {
  /** host:port of its frontend. */
  readonly address: string;
  /** A fresh folder for this server's state and whatever else the run keeps; removed by `stop`. */
  readonly scratch: string;
  stop(): Promise<void>;
}

/** A headless local dev server on a free port with its state in a fresh scratch folder (`prefix` names the folder). */
export async function startBenchServer(prefix: string): Promise<BenchServer> {
  const scratch = await mkdtemp(join(tmpdir(), prefix));
  const port = await freePort();
  try {
    const server = await startTemporal({ stateDir: scratch, port, uiPort: null });
    return {
      address: `127.0.0.1:${port}`,
      scratch,
      async stop() {
        await server.stop();
        await rm(scratch, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
}

/** One completed activity of a history; times in ms since the epoch. */
export interface ActivityRun {
  readonly type: string;
  /** The identity of the worker whose attempt completed. */
  readonly worker: string;
  readonly scheduled: number;
  /** The start of the attempt that completed (a history records only the last attempt's start). */
  readonly started: number;
  readonly completed: number;
}

/** A history timestamp in ms since the epoch. */
export function millis(t: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  return Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
}

/** The history's completed activities in the order they were scheduled. */
export function activityRuns(events: readonly HistoryEvent[]): ActivityRun[] {
  const scheduled = new Map<number, { type: string; at: number }>();
  const started = new Map<number, { at: number; worker: string }>();
  const runs: ActivityRun[] = [];
  for (const e of events) {
    const id = Number(e.eventId);
    if (e.activityTaskScheduledEventAttributes)
      scheduled.set(id, { type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '', at: millis(e.eventTime) });
    const start = e.activityTaskStartedEventAttributes;
    if (start) started.set(Number(start.scheduledEventId), { at: millis(e.eventTime), worker: start.identity ?? '' });
    const done = e.activityTaskCompletedEventAttributes;
    if (!done) continue;
    const from = scheduled.get(Number(done.scheduledEventId));
    const at = started.get(Number(done.scheduledEventId));
    if (from !== undefined && at !== undefined)
      runs.push({ type: from.type, worker: at.worker, scheduled: from.at, started: at.at, completed: millis(e.eventTime) });
  }
  return runs.sort((a, b) => a.scheduled - b.scheduled);
}

/** A history's size as the benchmarks report it: its events and the bytes of their JSON. */
export function historySize(events: readonly HistoryEvent[]): { readonly events: number; readonly bytes: number } {
  return { events: events.length, bytes: Buffer.byteLength(JSON.stringify(events)) };
}

/** A plain-text table printed a row at a time (a row as soon as its run ends), each column right-aligned under its heading. */
export class Table {
  constructor(private readonly columns: readonly string[]) {}

  printHeader(): void {
    console.log(this.columns.join('  '));
  }

  printRow(cells: readonly string[]): void {
    console.log(cells.map((cell, i) => cell.padStart(this.columns[i]?.length ?? 0)).join('  '));
  }
}
