/**
 * Temporal over mutual TLS, as the environment configures it for workers and the command line:
 * a real dev server behind a TLS front (certificates made here with openssl; the dev server
 * itself serves plain gRPC) that requires a client certificate signed by the test's CA.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { promisify } from 'node:util';

import { NativeConnection } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { main } from '../cli/commands.js';
import { ConnectionError, SelfRewardClient } from '../client/index.js';
import { EnvironmentError } from '../config/environment.js';
import { temporalConnection } from '../config/temporalConnection.js';
import { localTemporal } from './stack.js';
import { freePort } from './servers.js';

const run = promisify(execFile);
const openssl = (args: readonly string[]) => run('openssl', args);

/** A CA, a server certificate for localhost signed by it, and a client certificate signed by it. */
async function certificates(folder: string): Promise<Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string>> {
  const at = (name: string) => join(folder, name);
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '1', '-subj', '/CN=test-ca']);
  for (const [who, subject, extensions] of [
    ['server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    ['client', '/CN=worker', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', at(`${who}.key`), '-out', at(`${who}.csr`), '-subj', subject]);
    await openssl([
      'x509',
      '-req',
      '-in',
      at(`${who}.csr`),
      '-CA',
      at('ca.pem'),
      '-CAkey',
      at('ca.key'),
      '-CAcreateserial',
      '-out',
      at(`${who}.pem`),
      '-days',
      '1',
      '-extfile',
      await extfile(folder, who, extensions),
    ]);
  }
  return { ca: at('ca.pem'), serverCert: at('server.pem'), serverKey: at('server.key'), clientCert: at('client.pem'), clientKey: at('client.key') };
}

async function extfile(folder: string, who: string, extensions: string): Promise<string> {
  const { writeFile } = await import('node:fs/promises');
  const path = join(folder, `${who}.ext`);
  await writeFile(path, `${extensions}\n`);
  return path;
}

let env: TestWorkflowEnvironment;
let front: Server;
let address: string;
let certs: Awaited<ReturnType<typeof certificates>>;

beforeAll(async () => {
  env = await localTemporal();
  certs = await certificates(await mkdtemp(join(tmpdir(), 'tls-')));
  const [host, port] = env.address.split(':');
  // TLS in front, HTTP/2 behind: gRPC's frames pass through unchanged once TLS is taken off.
  front = createTlsServer(
    {
      key: await readFile(certs.serverKey),
      cert: await readFile(certs.serverCert),
      ca: await readFile(certs.ca),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (socket) => {
      const upstream = connect(Number(port), host === 'localhost' ? '127.0.0.1' : host);
      socket.pipe(upstream).pipe(socket);
      const close = () => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', close);
      upstream.on('error', close);
    },
  );
  const frontPort = await freePort();
  await new Promise<void>((listening) => front.listen(frontPort, '127.0.0.1', listening));
  address = `127.0.0.1:${frontPort}`;
});

afterAll(async () => {
  front?.close();
  await env?.teardown();
});

describe('a Temporal server that requires mutual TLS', () => {
  it('takes workers and clients configured by the TEMPORAL_TLS_* variables', async () => {
    const variables = {
      TEMPORAL_ADDRESS: address,
      TEMPORAL_TLS_CA: certs.ca,
      TEMPORAL_TLS_CERT: certs.clientCert,
      TEMPORAL_TLS_KEY: certs.clientKey,
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
    };
    const worker = await NativeConnection.connect(temporalConnection(variables));
    await worker.close();
    for (const [name, value] of Object.entries(variables)) vi.stubEnv(name, value);
    try {
      const client = await SelfRewardClient.connect();
      const seen: string[] = [];
      for await (const execution of client.temporal.workflow.list()) seen.push(execution.workflowId);
      expect(seen).toEqual([]);
      // The command line connects the same way: it reaches the server and finds no such round.
      const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
      expect(await main(['status', 'no-such-round'])).toBe(2);
      expect(error.mock.calls.join(' ')).toMatch(/no-such-round/);
      error.mockRestore();
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('refuses a client without a certificate, saying what to set', async () => {
    vi.stubEnv('TEMPORAL_ADDRESS', address);
    vi.stubEnv('TEMPORAL_TLS_CA', certs.ca);
    vi.stubEnv('TEMPORAL_TLS_SERVER_NAME', 'localhost');
    try {
      const error = await SelfRewardClient.connect().then(
        async (client) => {
          // A connection may open lazily: the first call is what the server refuses.
          await client.temporal.workflowService.getSystemInfo({});
          return null;
        },
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      if (error instanceof ConnectionError) expect(error.message).toContain('TEMPORAL_TLS_');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('names a certificate file it cannot read, and half a client pair', () => {
    expect(() => temporalConnection({ TEMPORAL_TLS_CA: '/no/such/ca.pem' })).toThrow(
      new EnvironmentError('TEMPORAL_TLS_CA: cannot read /no/such/ca.pem (ENOENT); expected a PEM file'),
    );
    expect(() => temporalConnection({ TEMPORAL_TLS_CERT: certs.clientCert })).toThrow(/TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY: expected both/);
    expect(temporalConnection({ TEMPORAL_API_KEY: 'key' })).toEqual({ address: 'localhost:7233', tls: true, apiKey: 'key' });
    expect(temporalConnection({})).toEqual({ address: 'localhost:7233' });
  });
});
