/** What the command line's commands share: their shape, the configuration options, the connection to Temporal, live progress lines. */
import { SelfRewardClient } from '../client/index.js';
import { PACKAGE_ROOT } from '../config/paths.js';
import { tracingFromEnvironment } from '../config/tracing.js';
import { startTracing, type Tracing } from '../observability/tracing.js';
import { storeFromEnvironment } from '../store/config.js';
import type { ArtifactStore } from '../store/store.js';
import { ConfigError, PRESETS } from './config.js';

/** The values parseArgs gives a command. */
export type Values = Record<string, string | boolean | undefined>;

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly description: string;
}
export type Options = Readonly<Record<string, OptionSpec>>;

export interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options: Options;
  /** Lines after the options in --help. */
  readonly details?: readonly string[];
  run(values: Values, positionals: string[]): Promise<void>;
}

export const CONFIG_OPTIONS: Options = {
  preset: { type: 'string', description: `a model pack's defaults: ${PRESETS.join(', ')} (a file's fields override them)` },
  id: { type: 'string', description: 'workflow id (default: a new one); starting an id that exists fails' },
  wait: { type: 'boolean', description: 'show live progress and the figures when done' },
  print: { type: 'boolean', description: "print the validated input as one JSON object (the Web UI's Start Workflow input) and start nothing" },
};

/** The command's tracing (OTEL_EXPORTER_OTLP_ENDPOINT): started by its first connection to Temporal, ended with the command. */
let tracing: Tracing | null | undefined;

/** A client for a command; with tracing on, each workflow it starts or changes continues the command's trace. */
export async function connectClient(): Promise<SelfRewardClient> {
  if (tracing === undefined) {
    const settings = tracingFromEnvironment(process.env, 'selfreward-cli');
    tracing = settings === null ? null : startTracing(settings, (message) => console.error(`selfreward: ${message}`));
  }
  return SelfRewardClient.connect(tracing === null ? {} : { interceptors: tracing.clientInterceptors });
}

/** The artifact store of SELF_REWARD_STORE, for commands that read a round's artifacts themselves; a bad setting is a user's error. */
export function openStore(): ArtifactStore {
  try {
    return storeFromEnvironment();
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

/** Exports the command's spans: the process may end as soon as the command does. */
export async function endTracing(): Promise<void> {
  await tracing?.shutdown();
  tracing = undefined;
}

function showLine(line: string): void {
  if (process.stdout.isTTY) process.stdout.write(`\r\u001b[2K${line}`);
  else console.log(line);
}

/** Redraws a status line as the figures change, until the workflow closes. */
export function liveLine<P>(render: (progress: P) => string): (progress: P) => void {
  let last = '';
  return (progress) => {
    const line = render(progress);
    if (line !== last) showLine(line);
    last = line;
  };
}

export function endLiveLine(): void {
  if (process.stdout.isTTY) process.stdout.write('\n');
}

export function sources(values: Values, positionals: readonly string[]) {
  return { file: positionals[0], preset: values['preset'] as string | undefined, root: PACKAGE_ROOT };
}

/** The preset's paths print absolute: the Web UI form has no preset and no working folder. */
export function printInput(input: unknown): void {
  console.log(JSON.stringify(input, null, 2));
}
