/** The local stack's servers, from the project venv (scripts/setup-servers.sh installs them). */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

import { VENV_BIN } from '../config/paths.js';
import { SEARCH_ATTRIBUTE_FLAGS } from '../config/searchAttributes.js';

export const TEMPORAL_CLI = join(VENV_BIN, 'temporal');
export const RCLONE = join(VENV_BIN, 'rclone');

export function requireBinary(path: string): string {
  if (!existsSync(path)) throw new Error(`${path} not found: run scripts/setup-servers.sh first`);
  return path;
}

export async function waitForPort(port: number, child: ChildProcess, timeoutMs: number, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before listening on ${port}`);
    const open = await new Promise<boolean>((done) => {
      const socket = connect(port, host);
      socket.once('connect', () => {
        socket.end();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on ${port} after ${timeoutMs} ms`);
}

export interface RunningServer {
  readonly child: ChildProcess;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

async function startServer(
  command: string,
  args: readonly string[],
  port: number,
  what: string,
  output: 'inherit' | 'pipe',
  env: Readonly<Record<string, string>> = {},
): Promise<RunningServer> {
  const child = spawn(requireBinary(command), args, { stdio: ['ignore', output, output], env: { ...process.env, ...env } });
  let log = '';
  child.stdout?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  child.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  try {
    await waitForPort(port, child, 60_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${what} did not start: ${(error as Error).message}\n${log}`, { cause: error });
  }
  return {
    child,
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}

export interface TemporalSettings {
  /** Folder of the SQLite file that keeps workflows across restarts. */
  readonly stateDir: string;
  readonly port: number;
  /** The Web UI's port; null runs headless. */
  readonly uiPort: number | null;
}

/** `temporal server start-dev` with a persistent SQLite file and the rounds' search attributes. */
export async function startTemporal(settings: TemporalSettings, output: 'inherit' | 'pipe' = 'pipe'): Promise<RunningServer> {
  mkdirSync(settings.stateDir, { recursive: true });
  const args = ['server', 'start-dev', '--db-filename', join(settings.stateDir, 'temporal.sqlite'), '--port', String(settings.port), '--log-level', 'warn'];
  args.push(...(settings.uiPort === null ? ['--headless'] : ['--ui-port', String(settings.uiPort)]));
  for (const flag of SEARCH_ATTRIBUTE_FLAGS) args.push('--search-attribute', flag);
  return startServer(TEMPORAL_CLI, args, settings.port, 'temporal server start-dev', output);
}

export interface S3ServerSettings {
  /** Buckets are this folder's subfolders. */
  readonly folder: string;
  readonly port: number;
  readonly accessKey: string;
  readonly secretKey: string;
}

/** `rclone serve s3`: a real S3 server over a local folder, for the local stack and tests. */
export async function startS3Server(settings: S3ServerSettings, output: 'inherit' | 'pipe' = 'pipe'): Promise<RunningServer> {
  mkdirSync(settings.folder, { recursive: true });
  const args = ['serve', 's3', '--addr', `127.0.0.1:${settings.port}`, settings.folder];
  // The key pair goes in the environment, not the command line, which every user of the machine
  // can read. rclone reads --auth-key from RCLONE_AUTH_KEY as a CSV list: the pair is one field.
  const pair = `${settings.accessKey},${settings.secretKey}`;
  return startServer(RCLONE, args, settings.port, 'rclone serve s3', output, { RCLONE_AUTH_KEY: `"${pair.replaceAll('"', '""')}"` });
}
