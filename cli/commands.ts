/**
 * The commands of `selfreward`, the command line of the self-reward loop; each has --help.
 * Temporal is reached at TEMPORAL_ADDRESS (default localhost:7233), namespace TEMPORAL_NAMESPACE.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { NamespaceNotFoundError } from '@temporalio/common';
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ServiceError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';

import { ConnectionError, InvalidInputError } from '../client/index.js';
import { EnvironmentError, fromEnvironment } from '../config/environment.js';
import { CAMPAIGN_SCHEMA } from '../config/campaign.js';
import { ROUND_SCHEMA } from '../config/round.js';
import { jsonSchemaDocument } from '../config/schema.js';
import { runWorker, WorkerStartError } from '../workers/setup.js';
import { CONFIG_OPTIONS, connectClient, endLiveLine, endTracing, liveLine, openStore, printInput, sources, type Command, type Options } from './command.js';
import { ConfigError, loadCampaignConfig, loadRoundConfig } from './config.js';
import { LINE_COMMANDS } from './lineCommands.js';
import { campaignLine, progressLine, roundSummary } from './progress.js';
import { downloadReport } from './reportCopy.js';
import { REVIEW_COMMAND } from './reviewCommand.js';
import { startS3Server, startTemporal, type RunningServer } from './servers.js';

const COMMANDS: Record<string, Command> = {
  ...LINE_COMMANDS,
  stack: {
    summary: 'run the local stack: Temporal dev server (persistent, Web UI) and, for an s3:// store, the S3 server',
    usage: 'selfreward stack [--state DIR] [--port N] [--ui-port N] [--headless]',
    options: {
      state: { type: 'string', description: 'folder for the SQLite file and the local S3 data (default .selfreward)' },
      port: { type: 'string', description: 'Temporal gRPC port (default 7233)' },
      'ui-port': { type: 'string', description: 'Web UI port (default 8233)' },
      headless: { type: 'boolean', description: 'no Web UI' },
    },
    details: [
      'With SELF_REWARD_STORE=s3://bucket and S3_ENDPOINT on 127.0.0.1 or localhost, an S3 server',
      '(rclone serve s3) runs there too, keyed by S3_ACCESS_KEY / S3_SECRET_KEY. Runs until Ctrl-C.',
    ],
    async run(values) {
      const state = resolve((values['state'] as string | undefined) ?? '.selfreward');
      const port = Number(values['port'] ?? 7233);
      const uiPort = values['headless'] ? null : Number(values['ui-port'] ?? 8233);
      const servers: RunningServer[] = [await startTemporal({ stateDir: state, port, uiPort })];
      console.log(`Temporal at localhost:${port}${uiPort === null ? '' : `, Web UI http://localhost:${uiPort}`} (state in ${state})`);
      const store = fromEnvironment(process.env, 'SELF_REWARD_STORE');
      const endpointText = fromEnvironment(process.env, 'S3_ENDPOINT');
      const endpoint = endpointText ? new URL(endpointText) : null;
      if (store.startsWith('s3://') && endpoint && ['127.0.0.1', 'localhost'].includes(endpoint.hostname)) {
        const accessKey = fromEnvironment(process.env, 'S3_ACCESS_KEY') ?? '';
        const secretKey = fromEnvironment(process.env, 'S3_SECRET_KEY') ?? '';
        if (accessKey === '' || secretKey === '') throw new ConfigError('S3_ACCESS_KEY and S3_SECRET_KEY must be set for the local S3 server');
        servers.push(await startS3Server({ folder: join(state, 's3'), port: Number(endpoint.port || 80), accessKey, secretKey }));
        console.log(`S3 server at ${endpoint.origin} (data in ${join(state, 's3')})`);
      }
      await new Promise<void>((done) => {
        process.once('SIGINT', done);
        process.once('SIGTERM', done);
      });
      await Promise.all(servers.map((s) => s.stop()));
    },
  },
  worker: {
    summary: 'run workers until Ctrl-C (graceful shutdown)',
    usage: 'selfreward worker [--role all-in-one|cpu|gpu]',
    options: { role: { type: 'string', description: 'all-in-one (default), cpu (workflows, curate, report) or gpu (sample, judge, train, evaluate)' } },
    details: ['Settings from the environment: SELF_REWARD_DEVICE, SELF_REWARD_STORE, SELF_REWARD_WORK_DIR, SELF_REWARD_TRAINER (see workers/setup.ts).'],
    async run(values) {
      const role = (values['role'] as string | undefined) ?? 'all-in-one';
      const roles = { 'all-in-one': 'all', cpu: 'cpu', gpu: 'gpu' } as const;
      if (!Object.hasOwn(roles, role)) throw new ConfigError(`--role: expected all-in-one, cpu or gpu, got ${JSON.stringify(role)}`);
      await runWorker(roles[role as keyof typeof roles]);
    },
  },
  round: {
    summary: 'start a self-reward round from a configuration file (JSON or YAML) or a preset',
    usage: 'selfreward round [FILE] [--preset NAME] [--id ID] [--wait | --print]',
    options: CONFIG_OPTIONS,
    async run(values, positionals) {
      const input = loadRoundConfig(sources(values, positionals));
      if (values['print']) return printInput(input);
      const selfReward = await connectClient();
      const round = await selfReward.startRound(input, { workflowId: values['id'] as string | undefined });
      console.log(`started round ${input.round} as ${round.workflowId}`);
      if (!values['wait']) return;
      const result = await round.result({ onProgress: liveLine(progressLine) });
      endLiveLine();
      console.log(roundSummary(result));
    },
  },
  campaign: {
    summary: 'start a campaign of rounds, each sampling from the previous tuned generator',
    usage: 'selfreward campaign [FILE] [--preset NAME] [--rounds N] [--id ID] [--wait | --print]',
    options: { ...CONFIG_OPTIONS, rounds: { type: 'string', description: 'how many rounds at most' } },
    details: [
      'FILE holds { "round": <round input>, "rounds": N, "minImprovement": x, "patience": k, "continueAsNewEveryRounds": n }; a preset is the first round.',
    ],
    async run(values, positionals) {
      const rounds = values['rounds'] === undefined ? undefined : Number(values['rounds']);
      const input = loadCampaignConfig(sources(values, positionals), { rounds });
      if (values['print']) return printInput(input);
      const selfReward = await connectClient();
      const campaign = await selfReward.startCampaign(input, { workflowId: values['id'] as string | undefined });
      console.log(`started a campaign of up to ${input.rounds} rounds as ${campaign.workflowId}`);
      if (!values['wait']) return;
      const result = await campaign.result({ onProgress: liveLine(campaignLine) });
      endLiveLine();
      console.log(`${campaignLine(result.rounds)}; stopped: ${result.stopReason}`);
      for (const round of result.rounds) console.log(`  round ${round.round}: report ${round.report}`);
    },
  },
  schema: {
    summary: 'print the JSON Schema of a round or campaign input (to check what you paste into the Web UI)',
    usage: 'selfreward schema round|campaign',
    options: {},
    async run(_values, [which]) {
      const schemas = { round: ROUND_SCHEMA, campaign: CAMPAIGN_SCHEMA } as const;
      if (which === undefined || !Object.hasOwn(schemas, which)) throw new ConfigError(`expected round or campaign, got ${JSON.stringify(which ?? null)}`);
      console.log(JSON.stringify(jsonSchemaDocument(schemas[which as keyof typeof schemas], `${which} input`), null, 2));
    },
  },
  status: {
    summary: "a round's progress (or a campaign's rounds)",
    usage: 'selfreward status ID',
    options: {},
    async run(_values, [id]) {
      const selfReward = await connectClient();
      const { kind, status } = await selfReward.describe(requireId(id));
      if (kind === 'campaign') console.log(`${status}: ${campaignLine(await selfReward.campaign(requireId(id)).rounds())}`);
      else console.log(`${status}: ${progressLine(await selfReward.round(requireId(id)).progress())}`);
    },
  },
  result: {
    summary: "wait for a round and print its figures (a campaign's: its rounds)",
    usage: 'selfreward result ID [--json]',
    options: { json: { type: 'boolean', description: "the whole result as JSON (a round's RoundResult, a campaign's CampaignResult), for scripts" } },
    async run(values, [id]) {
      const selfReward = await connectClient();
      const { kind } = await selfReward.describe(requireId(id));
      if (kind === 'campaign') {
        const result = await selfReward.campaign(requireId(id)).result();
        console.log(values['json'] ? JSON.stringify(result, null, 2) : `${campaignLine(result.rounds)}; stopped: ${result.stopReason}`);
      } else {
        const result = await selfReward.round(requireId(id)).result();
        console.log(values['json'] ? JSON.stringify(result, null, 2) : roundSummary(result));
      }
    },
  },
  cancel: {
    summary: 'cancel a round or campaign: running activities stop (the trainer is killed), nothing partial is published',
    usage: 'selfreward cancel ID',
    options: {},
    async run(_values, [id]) {
      await (await connectClient()).round(requireId(id)).cancel();
      console.log(`cancellation requested for ${id}`);
    },
  },
  report: {
    summary: "where a finished round's HTML report is; --open opens it, --download copies it with its images",
    usage: 'selfreward report ID [--open] [--download DIR]',
    options: {
      open: { type: 'boolean', description: 'open it with the desktop opener (xdg-open / open)' },
      download: {
        type: 'string',
        description: "copy the report and the images it shows out of the store (SELF_REWARD_STORE) into DIR, at their keys' paths, and print the copy's path",
      },
    },
    details: ['The report links its images (PNGs of the round in the store) by relative path; a copy made with --download keeps them beside it.'],
    async run(values, [id]) {
      const round = (await connectClient()).round(requireId(id));
      const progress = await round.progress();
      if (progress.report === null) throw new ConfigError(`${id} has no report yet (stage: ${progress.stage})`);
      const folder = values['download'] as string | undefined;
      const report = folder === undefined ? progress.report : await downloadReport(openStore(), (await round.result()).root, resolve(folder));
      console.log(report);
      if (values['open']) spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [report], { stdio: 'ignore', detached: true }).unref();
    },
  },
  review: REVIEW_COMMAND,
};

/** Errors a user causes and fixes: one line naming the flag, file, field or variable, and exit code 2. */
const USER_ERRORS = [
  ConfigError,
  InvalidInputError,
  ConnectionError,
  EnvironmentError,
  WorkerStartError,
  NamespaceNotFoundError,
  WorkflowNotFoundError,
  ScheduleNotFoundError,
  ScheduleAlreadyRunning,
];

function requireId(id: string | undefined): string {
  if (id === undefined || id === '') throw new ConfigError('give the workflow id');
  return id;
}

function help(command: Command): string {
  const all: Options = { ...command.options, help: { type: 'boolean', description: 'this help' } };
  const options = Object.entries(all)
    .map(([flag, o]) => `  --${flag}${o.type === 'string' ? ' VALUE' : ''}\n      ${o.description}`)
    .join('\n');
  return [`${command.usage}\n\n${command.summary}.`, `Options:\n${options}`, ...(command.details ? [command.details.join('\n')] : [])].join('\n\n');
}

function overview(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`);
  return `selfreward COMMAND [options]\n\nThe class-conditional self-reward loop as durable Temporal workflows.\n\nCommands:\n${lines.join('\n')}\n\nRun \`selfreward COMMAND --help\` for a command's options.`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(overview());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`selfreward: unknown command ${JSON.stringify(name)}\n\n${overview()}`);
    return 2;
  }
  let parsed;
  try {
    const options = Object.fromEntries(Object.entries(command.options).map(([flag, o]) => [flag, { type: o.type }]));
    parsed = parseArgs({ args: [...rest], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`selfreward ${name}: ${(error as Error).message}\n\n${help(command)}`);
    return 2;
  }
  if (parsed.values['help']) {
    console.log(help(command));
    return 0;
  }
  try {
    await command.run(parsed.values, parsed.positionals);
    return 0;
  } catch (error) {
    if (USER_ERRORS.some((kind) => error instanceof kind)) {
      console.error(`selfreward ${name}: ${(error as Error).message}`);
      return 2;
    }
    // The server refusing a request (an unknown namespace, say) is the user's to fix too.
    if (error instanceof ServiceError) {
      console.error(`selfreward ${name}: Temporal refused it: ${error.message.split('\n')[0]}`);
      return 2;
    }
    // A line refusing a promotion or rollback says why in the update's failure.
    if (error instanceof WorkflowUpdateFailedError && error.cause !== undefined) {
      console.error(`selfreward ${name}: ${error.cause.message}`);
      return 2;
    }
    throw error;
  } finally {
    await endTracing();
  }
}
