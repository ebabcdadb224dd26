/**
 * How workers and the command line connect to Temporal, from the environment: the address, and
 * TLS (a CA, a client certificate for mutual TLS, a server name) or an API key (Temporal Cloud).
 * One reader for both, so they always connect alike.
 */
import { readFileSync } from 'node:fs';

import type { TLSConfig } from '@temporalio/client';

import { EnvironmentError, fromEnvironment, type EnvironmentName } from './environment.js';

export interface TemporalConnectionSettings {
  readonly address: string;
  /** TLS settings; true: TLS with the system's CAs; undefined: plain TCP. */
  readonly tls?: TLSConfig | true;
  readonly apiKey?: string;
}

function pemFile(name: EnvironmentName, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw new EnvironmentError(`${name}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'}); expected a PEM file`);
  }
}

export function temporalConnection(env: NodeJS.ProcessEnv = process.env): TemporalConnectionSettings {
  const ca = pemFile('TEMPORAL_TLS_CA', fromEnvironment(env, 'TEMPORAL_TLS_CA'));
  const crt = pemFile('TEMPORAL_TLS_CERT', fromEnvironment(env, 'TEMPORAL_TLS_CERT'));
  const key = pemFile('TEMPORAL_TLS_KEY', fromEnvironment(env, 'TEMPORAL_TLS_KEY'));
  if ((crt === undefined) !== (key === undefined)) throw new EnvironmentError('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY: expected both (mutual TLS) or neither');
  const serverName = fromEnvironment(env, 'TEMPORAL_TLS_SERVER_NAME');
  const apiKey = fromEnvironment(env, 'TEMPORAL_API_KEY');
  const explicit = fromEnvironment(env, 'TEMPORAL_TLS');
  const configured = ca !== undefined || crt !== undefined || serverName !== undefined;
  if (explicit === 'false' && (configured || apiKey !== undefined))
    throw new EnvironmentError('TEMPORAL_TLS: false, while TLS settings or TEMPORAL_API_KEY are set');
  const tls: TLSConfig | true | undefined = configured
    ? {
        ...(ca === undefined ? {} : { serverRootCACertificate: ca }),
        ...(crt === undefined || key === undefined ? {} : { clientCertPair: { crt, key } }),
        ...(serverName === undefined ? {} : { serverNameOverride: serverName }),
      }
    : explicit === 'true' || apiKey !== undefined
      ? true
      : undefined;
  return { address: fromEnvironment(env, 'TEMPORAL_ADDRESS'), ...(tls === undefined ? {} : { tls }), ...(apiKey === undefined ? {} : { apiKey }) };
}
