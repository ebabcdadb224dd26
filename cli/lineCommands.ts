/** The command line's model-line commands: start a night, inspect and change a line, manage the Schedules that start nights. */
import { userInfo } from 'node:os';

import { ScheduleNotFoundError, type ScheduleDescription, type ScheduleOverlapPolicy, type ScheduleSummary } from '@temporalio/client';

import { OVERLAP_POLICIES, type NightlyScheduleOptions } from '../client/index.js';
import { LINE_NAME } from '../config/nightly.js';
import type { RecordedComparison } from '../contract/activities.js';
import type { LineEvent, LineState } from '../contract/lines.js';
import { selfRewardNightly } from '../workflows/index.js';
import { CONFIG_OPTIONS, connectClient, endLiveLine, liveLine, printInput, sources, type Command, type Values } from './command.js';
import { ConfigError, loadNightlyConfig } from './config.js';
import { accuracyGainText, diversityText, progressLine } from './progress.js';

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

/** A line's stored events and champion may come from earlier versions, without the later figures. */
function figures(c: RecordedComparison): string {
  return `win rate ${percent(c.winRate)} [${percent(c.winRateInterval[0])}, ${percent(c.winRateInterval[1])}], detector accuracy ${percent(c.accuracyBase)} -> ${percent(c.accuracyTuned)} (gain ${accuracyGainText(c)}), ${diversityText(c)}`;
}

export function eventLine(e: LineEvent): string {
  const champion = e.championBefore === e.championAfter ? `champion stays ${e.championAfter}` : `champion ${e.championBefore} -> ${e.championAfter}`;
  const measured = e.challenger === null ? '' : `; against the champion: ${figures(e.challenger.againstChampion)}`;
  return `#${e.seq} ${e.at} ${e.kind} ${e.verdict} (${champion}) by ${e.by}${measured}\n    ${e.reasons.join('\n    ')}`;
}

export function lineSummary(state: LineState): string {
  const { champion } = state;
  return [
    `line ${state.name} on ${state.base}: ${state.nights} night(s), ${state.events} event(s)`,
    `champion: version ${champion.version}, ${champion.tunedUnet === null ? 'the base generator' : `UNet ${champion.tunedUnet}`}, since ${champion.since}`,
    `  ${champion.origin}${champion.againstBase === null ? '' : `; against the base: ${figures(champion.againstBase)}`}`,
  ].join('\n');
}

function required(value: string | undefined, what: string): string {
  if (value === undefined || value === '') throw new ConfigError(`give ${what}`);
  return value;
}

function positiveInteger(value: string | boolean | undefined, flag: string): number {
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isInteger(n) || n < 1)
    throw new ConfigError(`--${flag}: expected an integer >= 1, got ${JSON.stringify(value ?? null)}`);
  return n;
}

const DURATION = /^\d+(ms|s|m|h|d)$/;

function duration(value: string | boolean | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !DURATION.test(value))
    throw new ConfigError(`--${flag}: expected a duration such as 30s, 15m, 6h or 1d, got ${JSON.stringify(value)}`);
  return value;
}

function overlap(value: string | boolean | undefined): ScheduleOverlapPolicy | undefined {
  if (value === undefined) return undefined;
  const policy = String(value).toUpperCase().replaceAll('-', '_');
  if (!(OVERLAP_POLICIES as readonly string[]).includes(policy)) {
    throw new ConfigError(
      `--overlap: expected one of ${OVERLAP_POLICIES.map((p) => p.toLowerCase().replaceAll('_', '-')).join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  return policy as ScheduleOverlapPolicy;
}

function time(value: string | boolean | undefined, flag: string): Date {
  const date = typeof value === 'string' ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(date.getTime())) throw new ConfigError(`--${flag}: expected a time such as 2026-12-01T02:00:00Z, got ${JSON.stringify(value ?? null)}`);
  return date;
}

function who(values: Values): string {
  return (values['by'] as string | undefined) ?? userInfo().username;
}

function scheduleOptions(values: Values): NightlyScheduleOptions {
  const cron = values['cron'] as string | undefined;
  const every = duration(values['every'], 'every');
  if ((cron === undefined) === (every === undefined)) throw new ConfigError('give either --cron "MIN HOUR DAY MONTH WEEKDAY" or --every DURATION');
  if (cron !== undefined && cron.trim().split(/\s+/).length !== 5)
    throw new ConfigError(`--cron: expected five fields (minute hour day month weekday), got ${JSON.stringify(cron)}`);
  const options: NightlyScheduleOptions = {
    scheduleId: values['id'] as string | undefined,
    ...(cron === undefined ? {} : { cron: [cron] }),
    ...(every === undefined ? {} : { every }),
    timezone: values['timezone'] as string | undefined,
    overlap: overlap(values['overlap']),
    catchupWindow: duration(values['catchup-window'], 'catchup-window'),
    pauseOnFailure: values['keep-on-failure'] !== true,
    note: values['note'] as string | undefined,
  };
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as NightlyScheduleOptions;
}

function isNightly(schedule: ScheduleSummary): boolean {
  return schedule.action?.type === 'startWorkflow' && schedule.action.workflowType === selfRewardNightly.name;
}

function scheduleLine(s: ScheduleSummary): string {
  const next = s.info.nextActionTimes[0]?.toISOString() ?? '-';
  return `${s.scheduleId}  line ${String(s.memo?.['line'] ?? '?')}  ${s.state.paused ? 'paused' : 'active'}  next ${next}${s.state.note ? `  (${s.state.note})` : ''}`;
}

function describeSchedule(d: ScheduleDescription): string {
  const recent = d.info.recentActions.map((a) => `  ${a.takenAt.toISOString()} started ${a.action.workflow.workflowId}`);
  return [
    `${d.scheduleId}: nights of line ${String(d.memo?.['line'] ?? '?')}, ${d.state.paused ? 'paused' : 'active'}${d.state.note ? ` (${d.state.note})` : ''}`,
    `  when: ${String(d.memo?.['when'] ?? '-')}; overlap ${(d.policies.overlap ?? 'SKIP').toLowerCase()}, catch-up window ${d.policies.catchupWindow / 1000} s, pause on failure ${d.policies.pauseOnFailure ? 'yes' : 'no'}`,
    `  next: ${d.info.nextActionTimes.map((t) => t.toISOString()).join(', ') || '-'}; running: ${d.info.runningActions.map((a) => a.workflow.workflowId).join(', ') || 'none'}; nights started: ${d.info.numActionsTaken}, skipped for overlap: ${d.info.numActionsSkippedOverlap}`,
    ...(recent.length > 0 ? ['  recent:', ...recent] : []),
  ].join('\n');
}

export const LINE_COMMANDS: Record<string, Command> = {
  nightly: {
    summary: "start one night of a model line now: sample from its champion, train a challenger, promote it if it passes the line's gate",
    usage: 'selfreward nightly [FILE] [--preset NAME] [--line NAME] [--id ID] [--wait | --print]',
    options: { ...CONFIG_OPTIONS, line: { type: 'string', description: 'the model line (created by its first night)' } },
    details: ['FILE holds { "line": NAME, "round": <round input>, "gate": {...}, "accumulate": true }; a preset is the round.'],
    async run(values, positionals) {
      const input = loadNightlyConfig(sources(values, positionals), { line: values['line'] as string | undefined });
      if (values['print']) return printInput(input);
      const night = await (await connectClient()).startNightly(input, { workflowId: values['id'] as string | undefined });
      console.log(`started a night of line ${input.line} as ${night.workflowId}`);
      if (!values['wait']) return;
      const result = await night.result({ onProgress: liveLine(progressLine) });
      endLiveLine();
      console.log(eventLine(result.decision));
      console.log(`  report: ${result.round.report.location}`);
    },
  },
  line: {
    summary: "a model line: its champion and newest events, its creation, a challenger's promotion or a rollback",
    usage: [
      'selfreward line show NAME',
      '       selfreward line history NAME',
      '       selfreward line create NAME --base DIR',
      '       selfreward line promote NAME --event SEQ --reason TEXT [--by WHO]',
      '       selfreward line rollback NAME --version V --reason TEXT [--by WHO]',
    ].join('\n'),
    options: {
      base: { type: 'string', description: 'create: the base generator folder (on the workers)' },
      event: { type: 'string', description: 'promote: the history event of the challenger to make champion' },
      version: { type: 'string', description: 'rollback: the champion version to restore' },
      reason: { type: 'string', description: 'promote, rollback: why (recorded in the history)' },
      by: { type: 'string', description: 'promote, rollback: who (default: your user name)' },
    },
    details: ['The whole history is in the store, lines/NAME/history/; `history` shows the newest events the line keeps at hand.'],
    async run(values, [verb, name]) {
      const line = required(name, 'the line name');
      if (!LINE_NAME.test(line)) throw new ConfigError(`${JSON.stringify(line)} is not a line name (lower case letters, digits, ".", "_", "-")`);
      const selfReward = await connectClient();
      switch (verb) {
        case 'show':
          return console.log(lineSummary(await selfReward.line(line).state()));
        case 'history':
          return console.log((await selfReward.line(line).state()).recent.map(eventLine).join('\n'));
        case 'create': {
          const handle = await selfReward.createLine({ name: line, base: required(values['base'] as string | undefined, '--base DIR') });
          return console.log(lineSummary(await handle.state()));
        }
        case 'promote':
          return console.log(
            eventLine(
              await selfReward
                .line(line)
                .promote(positiveInteger(values['event'], 'event'), who(values), required(values['reason'] as string | undefined, '--reason TEXT')),
            ),
          );
        case 'rollback':
          return console.log(
            eventLine(
              await selfReward
                .line(line)
                .rollback(positiveInteger(values['version'], 'version'), who(values), required(values['reason'] as string | undefined, '--reason TEXT')),
            ),
          );
        default:
          throw new ConfigError(`expected show, history, create, promote or rollback, got ${JSON.stringify(verb ?? null)}`);
      }
    },
  },
  schedule: {
    summary: "Temporal Schedules that start a line's nights: create, list, describe, pause, unpause, trigger, backfill, delete",
    usage: [
      'selfreward schedule create [FILE] [--preset NAME] [--line NAME] (--cron "0 2 * * *" [--timezone Europe/Paris] | --every 6h) [--overlap skip] [--catchup-window 1h] [--keep-on-failure] [--id ID] [--note TEXT]',
      '       selfreward schedule list',
      '       selfreward schedule describe|pause|unpause|trigger|delete ID [--note TEXT] [--overlap POLICY]',
      '       selfreward schedule backfill ID --start TIME --end TIME [--overlap POLICY]',
    ].join('\n'),
    options: {
      preset: CONFIG_OPTIONS['preset']!,
      line: { type: 'string', description: 'create: the model line' },
      cron: { type: 'string', description: 'create: when, as a cron expression (minute hour day month weekday)' },
      timezone: { type: 'string', description: "create: the cron expression's IANA time zone (default UTC)" },
      every: { type: 'string', description: 'create: or an interval: 30s, 15m, 6h, 1d' },
      overlap: {
        type: 'string',
        description: `what a firing does while a night still runs: ${OVERLAP_POLICIES.map((p) => p.toLowerCase().replaceAll('_', '-')).join(', ')} (default skip)`,
      },
      'catchup-window': { type: 'string', description: 'create: how late a missed firing may still start (default 1h)' },
      'keep-on-failure': { type: 'boolean', description: 'create: keep firing after a night fails (default: pause the schedule)' },
      id: { type: 'string', description: 'create: the schedule id (default line-NAME-nightly)' },
      note: { type: 'string', description: 'create, pause, unpause: a note the Web UI shows' },
      start: { type: 'string', description: 'backfill: from this time (ISO 8601)' },
      end: { type: 'string', description: 'backfill: to this time (ISO 8601)' },
    },
    details: ["The same schedules show on the Web UI's Schedules page and in `temporal schedule list`."],
    async run(values, [verb, ...rest]) {
      if (verb === 'create') {
        // Everything is checked before Temporal is contacted.
        const input = loadNightlyConfig(sources(values, rest), { line: values['line'] as string | undefined });
        const options = scheduleOptions(values);
        const handle = await (await connectClient()).createNightlySchedule(input, options);
        return console.log(`created schedule ${handle.scheduleId} for line ${input.line}\n${describeSchedule(await handle.describe())}`);
      }
      const selfReward = await connectClient();
      if (verb === 'list') {
        const found: string[] = [];
        for await (const summary of selfReward.temporal.schedule.list()) if (isNightly(summary)) found.push(scheduleLine(summary));
        return console.log(found.length > 0 ? found.join('\n') : 'no nightly schedules');
      }
      const id = required(rest[0], 'the schedule id');
      const schedule = selfReward.schedule(id);
      try {
        switch (verb) {
          case 'describe':
            return console.log(describeSchedule(await schedule.describe()));
          case 'pause':
            await schedule.pause(values['note'] as string | undefined);
            return console.log(`paused ${id}`);
          case 'unpause':
            await schedule.unpause(values['note'] as string | undefined);
            return console.log(`unpaused ${id}`);
          case 'trigger':
            await schedule.trigger(overlap(values['overlap']));
            return console.log(`triggered ${id}`);
          case 'backfill':
            await schedule.backfill({
              start: time(values['start'], 'start'),
              end: time(values['end'], 'end'),
              overlap: overlap(values['overlap']) ?? 'BUFFER_ALL',
            });
            return console.log(`backfilled ${id} from ${String(values['start'])} to ${String(values['end'])}`);
          case 'delete':
            await schedule.delete();
            return console.log(`deleted ${id}`);
          default:
            throw new ConfigError(`expected create, list, describe, pause, unpause, trigger, backfill or delete, got ${JSON.stringify(verb ?? null)}`);
        }
      } catch (error) {
        if (error instanceof ScheduleNotFoundError)
          throw new ConfigError(`no schedule ${JSON.stringify(id)} (selfreward schedule list shows the nightly ones)`);
        throw error;
      }
    },
  },
};
