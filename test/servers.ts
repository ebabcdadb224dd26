/** Real servers for tests, from the project venv (scripts/setup-servers.sh installs them). */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '..');
export const VENV_BIN = join(REPO_ROOT, '.venv', 'bin');
export const TEMPORAL_CLI = join(VENV_BIN, 'temporal');
export const RCLONE = join(VENV_BIN, 'rclone');
/** Workflow histories the replay test checks the workflows against. */
export const HISTORIES = join(REPO_ROOT, 'test', 'histories');

export function requireBinary(path: string): string {
  if (!existsSync(path)) throw new Error(`${path} not found: run scripts/setup-servers.sh first`);
  return path;
}

export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before listening on ${port}`);
    const open = await new Promise<boolean>((done) => {
      const socket = connect(port, '127.0.0.1');
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

export interface S3Server {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  stop(): Promise<void>;
}

/** `rclone serve s3` over `folder`: a real S3 implementation; buckets are its subfolders. */
export async function startS3Server(folder: string): Promise<S3Server> {
  const port = await freePort();
  const accessKey = 'test-access';
  const secretKey = 'test-secret-key';
  const child = spawn(requireBinary(RCLONE), ['serve', 's3', '--addr', `127.0.0.1:${port}`, '--auth-key', `${accessKey},${secretKey}`, folder], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  try {
    await waitForPort(port, child, 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`rclone serve s3 did not start: ${(error as Error).message}\n${log}`);
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    accessKey,
    secretKey,
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}
