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
  const where = env['SELF_REWARD_STORE'] ?? 'artifacts';
  if (!where.startsWith('s3://')) return new LocalFolderStore(where);
  const [bucket = '', ...rest] = where.slice('s3://'.length).split('/');
  const missing = ['S3_ENDPOINT', 'S3_ACCESS_KEY', 'S3_SECRET_KEY'].filter((name) => !env[name]);
  if (bucket === '' || missing.length > 0) {
    throw new Error(`SELF_REWARD_STORE=${where}: expected s3://bucket[/prefix] with ${missing.join(', ') || 'a bucket name'} set`);
  }
  const prefix = rest.filter((s) => s !== '').join('/');
  return new S3Store({
    endpoint: env['S3_ENDPOINT'] ?? '',
    bucket,
    accessKey: env['S3_ACCESS_KEY'] ?? '',
    secretKey: env['S3_SECRET_KEY'] ?? '',
    region: env['S3_REGION'] ?? 'us-east-1',
    prefix: prefix === '' ? '' : `${prefix}/`,
  });
}
