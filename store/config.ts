import { fromEnvironment, type EnvironmentName } from '../config/environment.js';
import { LocalFolderStore } from './local.js';
import { S3Store } from './s3.js';
import type { ArtifactStore } from './store.js';

/**
 * The store a worker writes to, from its environment: a deployment choice (and credentials),
 * so it is not part of a round's input, whose history anyone with Web UI access can read.
 *
 *   SELF_REWARD_STORE   a folder (the default: ./artifacts) or s3://bucket[/prefix]
 *   S3_ENDPOINT         http://host:port of the S3 server (MinIO)
 *   S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION (default us-east-1)
 */
export function storeFromEnvironment(env: NodeJS.ProcessEnv = process.env): ArtifactStore {
  const where = fromEnvironment(env, 'SELF_REWARD_STORE');
  if (!where.startsWith('s3://')) return new LocalFolderStore(where);
  const [bucket = '', ...rest] = where.slice('s3://'.length).split('/');
  const required: readonly EnvironmentName[] = ['S3_ENDPOINT', 'S3_ACCESS_KEY', 'S3_SECRET_KEY'];
  const missing = required.filter((name) => !fromEnvironment(env, name));
  if (bucket === '' || missing.length > 0) {
    throw new Error(`SELF_REWARD_STORE=${where}: expected s3://bucket[/prefix] with ${missing.join(', ') || 'a bucket name'} set`);
  }
  const prefix = rest.filter((s) => s !== '').join('/');
  return new S3Store({
    endpoint: fromEnvironment(env, 'S3_ENDPOINT') ?? '',
    bucket,
    accessKey: fromEnvironment(env, 'S3_ACCESS_KEY') ?? '',
    secretKey: fromEnvironment(env, 'S3_SECRET_KEY') ?? '',
    region: fromEnvironment(env, 'S3_REGION'),
    prefix: prefix === '' ? '' : `${prefix}/`,
  });
}
