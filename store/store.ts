/**
 * Where rounds keep their artifacts (images, score records, datasets, LoRA weights, reports).
 *
 * Publication is atomic per object: a reader sees a whole object or none (the local store
 * writes a hidden temporary file and renames it; an S3 PUT or completed multipart upload is
 * atomic). A set of objects is published by its manifest, written last: a reader trusts only
 * objects a manifest lists, so a crash between two puts leaves nothing half-published.
 */
export interface ArtifactStore {
  /** Where the artifacts are, for people (a folder or an s3:// address). */
  readonly location: string;
  /**
   * Creates the folder or bucket when it does not exist (a fresh deployment). Workers call it
   * at start; the local store then also removes the temporaries that killed writers left.
   */
  prepare(): Promise<void>;
  put(key: string, body: Uint8Array | string): Promise<void>;
  /** Streams a local file into the store (model weights can be gigabytes). */
  putFile(key: string, path: string): Promise<void>;
  /** The object's bytes; an `ArtifactNotFoundError` when there is none. */
  get(key: string): Promise<Buffer>;
  /** Streams an object into a local file, written atomically. */
  getFile(key: string, path: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /**
   * Removes the object; a missing one is no error, so a retried clean-up can repeat it. Only
   * scratch artifacts are removed (a trainer checkpoint once a newer one or the LoRA is
   * published): anything a manifest lists stays.
   */
  delete(key: string): Promise<void>;
  /** Keys under `prefix` (a folder-like prefix ending in `/`, or any key start), sorted. */
  list(prefix: string): Promise<string[]>;
  /** A link or path a person can open the object with. */
  locate(key: string): string;
}

export class ArtifactNotFoundError extends Error {
  override name = 'ArtifactNotFoundError';
}

export class ArtifactKeyError extends Error {
  override name = 'ArtifactKeyError';
}

/** The store cannot be reached or answered with a failure; another try may find it back. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** The store refuses the credentials or the bucket's policy refuses us. */
export class StoreAccessError extends Error {
  override name = 'StoreAccessError';
}

/**
 * Keys are relative, `/`-separated paths of plain segments: no empty, `.`-led or `..`
 * segments, so a key maps to one file under the local root and never outside it, and the
 * local store's hidden temporary files cannot collide with a key.
 */
export function checkKey(key: string): string {
  const segments = key.split('/');
  // Control characters are exactly what the check looks for.
  // eslint-disable-next-line no-control-regex
  const bad = segments.find((s) => s === '' || s.startsWith('.') || /[\\\u0000-\u001f]/.test(s));
  if (key.length === 0 || key.length > 1024 || bad !== undefined) {
    throw new ArtifactKeyError(
      `artifact key ${JSON.stringify(key)}: expected a relative path of non-empty segments not starting with "." (no backslashes or control characters)`,
    );
  }
  return key;
}

/** A prefix for `list`: empty, a key start, or a folder-like prefix ending in `/`. */
export function checkPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  checkKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  return prefix;
}

export async function getJson<T>(store: ArtifactStore, key: string): Promise<T> {
  return JSON.parse((await store.get(key)).toString('utf8')) as T;
}

export async function putJson(store: ArtifactStore, key: string, value: unknown): Promise<void> {
  await store.put(key, `${JSON.stringify(value, null, 1)}\n`);
}

/** The object as JSON, or null when it has not been published. */
/** The object's text, or null when it has not been published. */
export async function findText(store: ArtifactStore, key: string): Promise<string | null> {
  try {
    return (await store.get(key)).toString('utf8');
  } catch (error) {
    if (error instanceof ArtifactNotFoundError) return null;
    throw error;
  }
}

export async function findJson<T>(store: ArtifactStore, key: string): Promise<T | null> {
  try {
    return await getJson<T>(store, key);
  } catch (error) {
    if (error instanceof ArtifactNotFoundError) return null;
    throw error;
  }
}
