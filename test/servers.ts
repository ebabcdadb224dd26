/** Servers and paths for tests. */
import { createServer } from 'node:net';
import { join } from 'node:path';

import { startS3Server as startRcloneS3 } from '../cli/servers.js';
import { PACKAGE_ROOT as REPO_ROOT } from '../config/paths.js';

export { requireBinary, TEMPORAL_CLI } from '../cli/servers.js';
export { REPO_ROOT };

/** Workflow histories the replay test checks the workflows against. */
export const HISTORIES = join(REPO_ROOT, 'test', 'histories');

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

export interface S3Server {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

/** A real S3 server over `folder` on a free port. */
export async function startS3Server(folder: string): Promise<S3Server> {
  const port = await freePort();
  const keys = { accessKey: 'test-access', secretKey: 'test-secret-key' };
  const server = await startRcloneS3({ folder, port, ...keys });
  return { endpoint: `http://127.0.0.1:${port}`, ...keys, pid: server.child.pid, stop: () => server.stop() };
}
