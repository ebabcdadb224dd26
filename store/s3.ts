import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';

import { Client } from 'minio';

import { ArtifactKeyError, ArtifactNotFoundError, checkKey, checkPrefix, StoreAccessError, StoreUnavailableError, type ArtifactStore } from './store.js';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  json: 'application/json',
  png: 'image/png',
  txt: 'text/plain; charset=utf-8',
  log: 'text/plain; charset=utf-8',
};

/**
 * The type an object is served with, from its key's extension: a browser shows a report or an
 * image opened from its link only when the server says what it is.
 */
export function contentTypeOf(key: string): string {
  const extension = /\.([a-z0-9]+)$/i.exec(key)?.[1]?.toLowerCase() ?? '';
  return CONTENT_TYPES[extension] ?? 'application/octet-stream';
}

export interface S3Settings {
  /** `http://host:port` or `https://host`. */
  readonly endpoint: string;
  readonly bucket: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** Prepended to every key, so several deployments can share a bucket. */
  readonly prefix: string;
}

/** S3's answers that the credentials or the bucket's policy refuse us: no retry changes them. */
const ACCESS_DENIED = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken']);

function isNotFound(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'NotFound' || code === 'NoSuchKey';
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Artifacts in an S3 bucket (MinIO in production), path-style addressing. */
export class S3Store implements ArtifactStore {
  private readonly client: Client;

  constructor(private readonly settings: S3Settings) {
    const url = new URL(settings.endpoint);
    const useSSL = url.protocol === 'https:';
    this.client = new Client({
      endPoint: url.hostname,
      port: url.port === '' ? (useSSL ? 443 : 80) : Number(url.port),
      useSSL,
      accessKey: settings.accessKey,
      secretKey: settings.secretKey,
      region: settings.region,
      pathStyle: true,
    });
    if (settings.prefix !== '') checkPrefix(settings.prefix);
  }

  /**
   * Runs a client call. A missing object passes through for the caller to name; refused
   * credentials become a StoreAccessError and anything else a StoreUnavailableError, each naming
   * the endpoint and bucket (never the keys), so an unreachable store does not read like Temporal.
   */
  private async s3<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (isNotFound(error) || error instanceof ArtifactKeyError) throw error;
      const code = (error as { code?: string }).code ?? (error as Error).name;
      const where = `S3 store ${this.settings.endpoint} bucket ${this.settings.bucket}`;
      if (ACCESS_DENIED.has(code))
        throw new StoreAccessError(`${where}: refused the credentials (${code}); check S3_ACCESS_KEY and S3_SECRET_KEY`, { cause: error });
      throw new StoreUnavailableError(`${where}: ${code} (${(error as Error).message.slice(0, 200)})`, { cause: error });
    }
  }

  get location(): string {
    return `s3://${this.settings.bucket}/${this.settings.prefix}`;
  }

  private object(key: string): string {
    return `${this.settings.prefix}${checkKey(key)}`;
  }

  locate(key: string): string {
    const path = this.object(key).split('/').map(encodeURIComponent).join('/');
    return `${this.settings.endpoint.replace(/\/$/, '')}/${this.settings.bucket}/${path}`;
  }

  async prepare(): Promise<void> {
    if (!(await this.s3(() => this.client.bucketExists(this.settings.bucket))))
      await this.s3(() => this.client.makeBucket(this.settings.bucket, this.settings.region));
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    await this.s3(() => this.client.putObject(this.settings.bucket, this.object(key), bytes, bytes.length, { 'Content-Type': contentTypeOf(key) }));
  }

  async putFile(key: string, path: string): Promise<void> {
    await this.s3(() => this.client.fPutObject(this.settings.bucket, this.object(key), path, { 'Content-Type': contentTypeOf(key) }));
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await this.s3(async () => collect(await this.client.getObject(this.settings.bucket, this.object(key))));
    } catch (error) {
      if (isNotFound(error)) throw new ArtifactNotFoundError(`${key}: no such artifact in ${this.location}`);
      throw error;
    }
  }

  async getFile(key: string, target: string): Promise<void> {
    const path = resolve(target);
    await mkdir(dirname(path), { recursive: true });
    const temporary = join(dirname(path), `.tmp-${randomBytes(6).toString('hex')}`);
    try {
      await this.s3(() => this.client.fGetObject(this.settings.bucket, this.object(key), temporary));
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      if (isNotFound(error)) throw new ArtifactNotFoundError(`${key}: no such artifact in ${this.location}`);
      throw error;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.s3(() => this.client.statObject(this.settings.bucket, this.object(key)));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    // S3 answers a delete of a missing key with success too.
    await this.s3(() => this.client.removeObject(this.settings.bucket, this.object(key)));
  }

  async list(prefix: string): Promise<string[]> {
    checkPrefix(prefix);
    return this.s3(async () => {
      const keys: string[] = [];
      const stream = this.client.listObjectsV2(this.settings.bucket, `${this.settings.prefix}${prefix}`, true);
      for await (const item of stream as AsyncIterable<{ name?: string }>) {
        if (item.name !== undefined) keys.push(item.name.slice(this.settings.prefix.length));
      }
      return keys.sort();
    });
  }
}
