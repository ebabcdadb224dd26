/**
 * Every environment variable the workers and the command line read, in one list: the code reads
 * them through `fromEnvironment` (so a name missing here does not compile, and a value that
 * breaks the variable's rule fails naming the variable), and the deployment files and the
 * README's configuration reference are checked against this list by tests.
 */

export interface EnvironmentVariable {
  /** The value used when the variable is unset; null when there is none (or it is computed). */
  readonly default: string | null;
  /** Who reads it: the workers (both roles) and/or the command line. */
  readonly readBy: readonly ('workers' | 'CLI')[];
  readonly meaning: string;
  /** What a set value must look like, and how an error says so. */
  readonly rule?: { readonly pattern: RegExp; readonly expected: string };
}

/** A variable set to a value its rule refuses. */
export class EnvironmentError extends Error {
  override name = 'EnvironmentError';
}

export const ENVIRONMENT = {
  TEMPORAL_ADDRESS: {
    default: 'localhost:7233',
    readBy: ['workers', 'CLI'],
    meaning: 'host:port of the Temporal frontend',
    rule: { pattern: /^[^\s/:]+:\d+$/, expected: 'host:port' },
  },
  TEMPORAL_NAMESPACE: { default: 'default', readBy: ['workers', 'CLI'], meaning: 'the Temporal namespace of rounds and campaigns' },
  TEMPORAL_TLS: {
    default: null,
    readBy: ['workers', 'CLI'],
    meaning:
      '`true`: connect to Temporal over TLS, checking its certificate against the system CAs (set implicitly by the other `TEMPORAL_TLS_*` variables and `TEMPORAL_API_KEY`)',
    rule: { pattern: /^(true|false)$/, expected: 'true or false' },
  },
  TEMPORAL_TLS_CA: { default: null, readBy: ['workers', 'CLI'], meaning: "PEM file of the CA that signed the Temporal server's certificate" },
  TEMPORAL_TLS_CERT: { default: null, readBy: ['workers', 'CLI'], meaning: "PEM file of this client's certificate, for mutual TLS (with `TEMPORAL_TLS_KEY`)" },
  TEMPORAL_TLS_KEY: { default: null, readBy: ['workers', 'CLI'], meaning: "PEM file of this client's private key, for mutual TLS" },
  TEMPORAL_TLS_SERVER_NAME: {
    default: null,
    readBy: ['workers', 'CLI'],
    meaning: "the name the server's certificate must carry, when it is not the address's host",
  },
  TEMPORAL_API_KEY: { default: null, readBy: ['workers', 'CLI'], meaning: 'an API key (Temporal Cloud); implies TLS' },
  SELF_REWARD_DEVICE: {
    default: 'cpu',
    readBy: ['workers'],
    meaning: '`cpu` or `cuda:N`: where models load; the trainer sees only that GPU (unless SELF_REWARD_TRAINER_DEVICES names more)',
    rule: { pattern: /^(cpu|cuda(:\d+)?)$/, expected: 'cpu, cuda or cuda:N' },
  },
  SELF_REWARD_THREADS: {
    default: null,
    readBy: ['workers'],
    meaning:
      "CPU threads for the worker's model work: each ONNX session's (sampler, judge) and the trainer's torch and OpenMP threads (unset: the cores the process may use); give workers that share a host a share of its cores each",
    rule: { pattern: /^[1-9]\d*$/, expected: 'a positive integer' },
  },
  SELF_REWARD_MODEL_LANES: {
    default: null,
    readBy: ['workers'],
    meaning:
      "how many copies of the generator, the judge and the referee run side by side, each in a thread of its own with an even share of `SELF_REWARD_THREADS`, a prompt's images split between them (unset: on `cpu`, for graphs under 1 GiB, one per thread while the copies fit in half the host's memory; else one); the images and scores are the same for any number",
    rule: { pattern: /^[1-9]\d*$/, expected: 'a positive integer' },
  },
  SELF_REWARD_WORK_DIR: { default: '.work', readBy: ['workers'], meaning: 'local scratch: downloads, trainer output and checkpoints' },
  SELF_REWARD_SAMPLE_CACHE_MB: {
    default: '1024',
    readBy: ['workers'],
    meaning:
      "megabytes of a GPU worker's own sampled images kept in `<work dir>/samples`, so a shard's judge, run on the worker that sampled it, reads them from disk instead of the store (a shard's images go once it is judged there, the oldest first when over the size); 0: none kept",
    rule: { pattern: /^\d+$/, expected: 'a whole number of megabytes' },
  },
  SELF_REWARD_ALLOWED_PATHS: {
    default: null,
    readBy: ['workers'],
    meaning: "folders, `:`-separated, that a round's model folders and prompt files must lie in (unset: any path the worker can read)",
    rule: { pattern: /^\/[^:]*(:\/[^:]*)*$/, expected: 'absolute folder paths separated by ":"' },
  },
  SELF_REWARD_SHUTDOWN_GRACE_SECONDS: {
    default: '30',
    readBy: ['workers'],
    meaning:
      'how long a stopping worker (SIGTERM) lets running activities finish before it cancels them; a cancelled training stores a checkpoint first, so keep it under the container stop grace period',
    rule: { pattern: /^\d+$/, expected: 'a whole number of seconds' },
  },
  SELF_REWARD_METRICS_ADDRESS: {
    default: null,
    readBy: ['workers'],
    meaning: 'host:port where the worker serves Prometheus metrics at `/metrics` (the SDK\'s and the loop\'s, README "Observability"); unset: no endpoint',
    rule: { pattern: /^[^\s/:]*:\d+$/, expected: 'host:port, such as 0.0.0.0:9464' },
  },
  SELF_REWARD_LOG_FORMAT: {
    default: 'text',
    readBy: ['workers'],
    meaning: '`text`, or `json`: one JSON object per line, with the workflow, run, round, stage, shard and attempt as fields',
    rule: { pattern: /^(text|json)$/, expected: 'text or json' },
  },
  SELF_REWARD_LOG_LEVEL: {
    default: 'INFO',
    readBy: ['workers'],
    meaning: 'the lowest level logged: `DEBUG`, `INFO`, `WARN` or `ERROR`',
    rule: { pattern: /^(TRACE|DEBUG|INFO|WARN|ERROR)$/, expected: 'TRACE, DEBUG, INFO, WARN or ERROR' },
  },
  OTEL_EXPORTER_OTLP_ENDPOINT: {
    default: null,
    readBy: ['workers', 'CLI'],
    meaning:
      'the OTLP/HTTP base URL of an OpenTelemetry Collector or a tracing backend, such as `http://localhost:4318`: set, the process exports traces (OTLP/JSON) to its `/v1/traces` (README "Traces"); unset or empty: no tracing',
    rule: { pattern: /^(https?:\/\/[^\s/]+(\/\S*)?)?$/, expected: 'an http:// or https:// URL, such as http://localhost:4318' },
  },
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {
    default: null,
    readBy: ['workers', 'CLI'],
    meaning: 'the full OTLP/HTTP URL traces are posted to, used as given (instead of `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`)',
    rule: { pattern: /^(https?:\/\/[^\s/]+(\/\S*)?)?$/, expected: 'an http:// or https:// URL, such as http://localhost:4318/v1/traces' },
  },
  OTEL_SERVICE_NAME: {
    default: null,
    readBy: ['workers', 'CLI'],
    meaning: 'the service name on the spans (unset: `selfreward-worker-<role>` for a worker, `selfreward-cli` for the command line)',
  },
  SELF_REWARD_TRAINER: {
    default: null,
    readBy: ['workers'],
    meaning:
      "the trainer command, words split at spaces (unset: the project venv's `python -m loratrain`, run in `python/`); `torchrun --standalone --nproc_per_node N -m loratrain` (or `accelerate launch --multi_gpu --num_processes N -m loratrain`) trains data-parallel on the N GPUs of SELF_REWARD_TRAINER_DEVICES",
  },
  SELF_REWARD_TRAINER_DEVICES: {
    default: null,
    readBy: ['workers'],
    meaning:
      "the GPUs the trainer sees, as CUDA indices (`0,1,2,3`), for a trainer command that launches one process per GPU (unset: the worker's own GPU, that of SELF_REWARD_DEVICE)",
    rule: { pattern: /^\d+(,\d+)*$/, expected: 'CUDA indices separated by commas, such as 0,1,2,3' },
  },
  SELF_REWARD_TRAINER_ADDRESS: {
    default: null,
    readBy: ['workers'],
    meaning:
      "the host name or IP address at which the other GPU workers reach this worker's trainer when they train a LoRA together (`lora.workers` > 1; unset: this host's first non-internal IPv4 address, else 127.0.0.1)",
    rule: { pattern: /^[A-Za-z0-9.:-]+$/, expected: 'a host name or IP address' },
  },
  SELF_REWARD_STORE: {
    default: 'artifacts',
    readBy: ['workers', 'CLI'],
    meaning: 'the artifact store: a folder, or `s3://bucket[/prefix]` (then the `S3_*` variables are required)',
  },
  S3_ENDPOINT: {
    default: null,
    readBy: ['workers', 'CLI'],
    meaning: '`http://host:port` of the S3 server (MinIO)',
    rule: { pattern: /^https?:\/\/[^\s/]+\/?$/, expected: 'http://host:port or https://host:port' },
  },
  S3_ACCESS_KEY: { default: null, readBy: ['workers', 'CLI'], meaning: 'S3 access key' },
  S3_SECRET_KEY: { default: null, readBy: ['workers', 'CLI'], meaning: 'S3 secret key' },
  S3_REGION: { default: 'us-east-1', readBy: ['workers'], meaning: 'S3 region' },
} as const satisfies Readonly<Record<string, EnvironmentVariable>>;

export type EnvironmentName = keyof typeof ENVIRONMENT;

/** The variables that have a default: reading one always gives a value. */
type Defaulted = { [K in EnvironmentName]: (typeof ENVIRONMENT)[K]['default'] extends string ? K : never }[EnvironmentName];

/** The variable's value, else its default; undefined when it has neither. A value its rule refuses throws an EnvironmentError naming the variable. */
export function fromEnvironment(env: NodeJS.ProcessEnv, name: Defaulted): string;
export function fromEnvironment(env: NodeJS.ProcessEnv, name: EnvironmentName): string | undefined;
export function fromEnvironment(env: NodeJS.ProcessEnv, name: EnvironmentName): string | undefined {
  const variable: EnvironmentVariable = ENVIRONMENT[name];
  const value = env[name];
  if (value !== undefined && variable.rule !== undefined && !variable.rule.pattern.test(value)) {
    throw new EnvironmentError(`${name}: expected ${variable.rule.expected}, got ${JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value)}`);
  }
  return value ?? variable.default ?? undefined;
}
