/**
 * The bad-input battery: what a careless or hostile user can hand the product, each case checked
 * for the same things. A configuration the schema refuses fails before Temporal is contacted; a
 * round whose files, models or store references are wrong fails in the check before sampling,
 * on its first attempt; every failure names the field or file and carries none of a file's
 * contents; nothing of a refused round is left in the store. The last line counts what held.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { ActivityFailure, ApplicationFailure } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import type { ActivityDependencies } from '../activities/dependencies.js';
import { main } from '../cli/commands.js';
import { SelfRewardClient } from '../client/index.js';
import { temporalConnection } from '../config/temporalConnection.js';
import { roundRoot } from '../contract/keys.js';
import { encodePng } from '../models/png.js';
import { PYTHON, REPO_ROOT as ROOT, testGenerator } from '../models/testing/python.js';
import { storeFromEnvironment } from '../store/config.js';
import { S3Store } from '../store/s3.js';
import { StoreUnavailableError } from '../store/store.js';
import { dependenciesFromEnvironment } from '../workers/dependencies.js';
import { PACK, testDetector, tinyRoundInput } from './models.js';
import { localTemporal, testDependencies, withRoundWorkers } from './stack.js';

/** A secret in a file a prompt file must never leak. */
const SECRET = 'aws_secret_access_key = AKIA-BATTERY-SECRET';

let env: TestWorkflowEnvironment;
let deps: ActivityDependencies;
let scratch: string;
let base: Record<string, unknown>;
const outcomes: { readonly name: string; readonly held: boolean }[] = [];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'battery-'));
  const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
  env = await localTemporal();
  deps = { ...testDependencies(scratch), allowedPaths: [PACK, scratch] };
  base = tinyRoundInput(generator, detector, { sampling: { steps: 2 }, lora: { maxSteps: 2, batchSize: 2 }, activities: { maximumAttempts: 5 } });
  await writeFile(join(scratch, 'credentials'), `${SECRET}\n[default]\nregion = eu-west-1\n`);
});

afterAll(async () => {
  await deps?.runtime.release();
  await env?.teardown();
  const held = outcomes.filter((o) => o.held).length;
  // The battery's own count, beside the test runner's.
  console.log(`bad-input battery: ${held} passed, ${outcomes.length - held} failed`);
});

/** Runs a case's checks, recording whether it held. */
function holds(name: string, check: () => Promise<void>): [string, () => Promise<void>] {
  return [
    name,
    async () => {
      try {
        await check();
        outcomes.push({ name, held: true });
      } catch (error) {
        outcomes.push({ name, held: false });
        throw error;
      }
    },
  ];
}

/** The command line's answer to a configuration: its exit code and what it printed on stderr. */
async function cli(args: readonly string[], variables: Record<string, string> = {}): Promise<{ code: number; error: string }> {
  const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  // Nothing listens there: a configuration that reached Temporal would fail otherwise than named.
  vi.stubEnv('TEMPORAL_ADDRESS', '127.0.0.1:1');
  for (const [name, value] of Object.entries(variables)) vi.stubEnv(name, value);
  try {
    const code = await main(args);
    return { code, error: error.mock.calls.map((c) => c.join(' ')).join('\n') };
  } finally {
    error.mockRestore();
    log.mockRestore();
    vi.unstubAllEnvs();
  }
}

async function configFile(name: string, content: unknown): Promise<string> {
  const path = join(scratch, name);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** A configuration refused by the command line with exit code 2, in one line naming `names`. */
async function refusedByCli(args: readonly string[], names: RegExp, variables: Record<string, string> = {}): Promise<void> {
  const { code, error } = await cli(args, variables);
  expect(code).toBe(2);
  expect(error.split('\n')).toHaveLength(1);
  expect(error).toMatch(names);
  expect(error).not.toContain(SECRET);
}

const round = (overrides: Record<string, unknown>) => ({ ...base, ...overrides });
const judge = (overrides: Record<string, unknown>) => ({ ...(base['judge'] as object), ...overrides });

const SCHEMA_CASES = [
  holds('samplesPerPrompt 0', () =>
    configFile('a.json', round({ samplesPerPrompt: 0 })).then((f) => refusedByCli(['round', f], /samplesPerPrompt: expected an integer in \[1, 1000\], got 0/)),
  ),
  holds('steps 2.5', () =>
    configFile('b.json', round({ sampling: { steps: 2.5 } })).then((f) => refusedByCli(['round', f], /sampling.steps: expected an integer/)),
  ),
  holds('a typo of a field', () =>
    configFile('c.json', round({ lora: { rnak: 8 } })).then((f) => refusedByCli(['round', f], /lora.rnak: expected no such field/)),
  ),
  holds('threshold 2', () =>
    configFile('d.json', round({ judge: judge({ threshold: 2 }) })).then((f) => refusedByCli(['round', f], /judge.threshold: expected a number in \[0, 1\]/)),
  ),
  holds('weights all zero', () =>
    configFile('e.json', round({ judge: judge({ weights: { detection: 0, checklist: 0, similarity: 0, clip: 0, count: 0 } }) })).then((f) =>
      refusedByCli(['round', f], /judge.weights: expected null or weights not all zero/),
    ),
  ),
  holds('a weight of no part', () =>
    configFile('f.json', round({ judge: judge({ weights: { colour: 1 } }) })).then((f) => refusedByCli(['round', f], /judge.weights.colour/)),
  ),
  holds('an empty synonym', () =>
    configFile('g.json', round({ judge: judge({ synonyms: { circle: [''] } }) })).then((f) => refusedByCli(['round', f], /judge.synonyms.circle.0/)),
  ),
  holds('an unknown scheduler', () =>
    configFile('h.json', round({ sampling: { scheduler: 'PNDMScheduler' } })).then((f) =>
      refusedByCli(['round', f], /sampling.scheduler: expected null or one of/),
    ),
  ),
  holds('no prompts', () =>
    configFile('i.json', round({ prompts: [] })).then((f) => refusedByCli(['round', f], /prompts: expected null or at least one prompt/)),
  ),
  holds('an inline prompt without text', () =>
    configFile('j.json', round({ prompts: [{ className: 'circle' }] })).then((f) => refusedByCli(['round', f], /prompts.0: expected/)),
  ),
  holds('a class named __proto__', () =>
    configFile('k.json', round({ prompts: [{ className: '__proto__', text: 'x' }] })).then((f) =>
      refusedByCli(['round', f], /prompts.0.className: expected a class name other than __proto__/),
    ),
  ),
  holds('a __proto__ key slipping past the unknown-field check', () =>
    configFile('l.json', `{"__proto__": {"shards": 0}, ${JSON.stringify(round({})).slice(1)}`).then((f) =>
      refusedByCli(['round', f], /__proto__: not a field \(a key that would reach an object's prototype\)/),
    ),
  ),
  holds('no held-out prompts', () =>
    configFile('m.json', { ...round({}), evaluation: undefined }).then((f) =>
      refusedByCli(['round', f], /evaluation: expected an object with at least "prompts"/),
    ),
  ),
  holds('NaN from YAML', () =>
    configFile('n.yaml', `samplesPerPrompt: .nan\n`).then((f) =>
      refusedByCli(['round', f, '--preset', 'shapes'], /samplesPerPrompt: expected an integer in \[1, 1000\], got NaN/),
    ),
  ),
  holds('a list instead of an object', () =>
    configFile('o.yaml', '- a\n- b\n').then((f) => refusedByCli(['round', f], /\(input\): expected an object, got \["a","b"\]/)),
  ),
  holds('a folder as the configuration file', () => refusedByCli(['round', scratch], /not a file; expected a JSON or YAML configuration file/)),
  holds('a missing configuration file', () => refusedByCli(['round', join(scratch, 'nope.json')], /nope.json: no such configuration file/)),
  holds('broken YAML', () => configFile('p.yaml', 'shards: [1,\n').then((f) => refusedByCli(['round', f], /p.yaml: not valid JSON or YAML/))),
  holds('a 3 MB input', () =>
    configFile(
      'q.json',
      round({ prompts: Array.from({ length: 30_000 }, (_, i) => ({ className: 'circle', text: `one red circle number ${i} ${'x'.repeat(60)}` })) }),
    ).then((f) => refusedByCli(['round', f], /\(input\): expected at most 1 MB as JSON \(put long prompt lists in a prompt file\), got 3\.\d MB/)),
  ),
  holds('a line name with a slash', () =>
    configFile('r.json', { line: 'a/b', round: base }).then((f) => refusedByCli(['nightly', f], /line: expected a line name/)),
  ),
  holds('a gate bound of 2', () =>
    configFile('s.json', { line: 'a', round: base, gate: { minWinRateLow: 2 } }).then((f) =>
      refusedByCli(['nightly', f], /gate.minWinRateLow: expected a number in \[0, 1\]/),
    ),
  ),
  holds('a night naming its own tuned UNet', () =>
    configFile('t.json', { line: 'a', round: round({ generator: { base: '/g', tunedUnet: 'runs/x/lora/' } }) }).then((f) =>
      refusedByCli(['nightly', f], /round.generator.tunedUnet: expected null/),
    ),
  ),
  holds('a campaign of 0 rounds', () =>
    configFile('u.json', { round: base, rounds: 0 }).then((f) => refusedByCli(['campaign', f], /rounds: expected an integer in \[1, 1000\], got 0/)),
  ),
  holds('a schedule with neither cron nor interval', () =>
    configFile('v.json', { line: 'a', round: base }).then((f) => refusedByCli(['schedule', 'create', f], /give either --cron/)),
  ),
];

const ENVIRONMENT_CASES = [
  holds('SELF_REWARD_THREADS=many', () =>
    refusedByCli(['worker', '--role', 'gpu'], /SELF_REWARD_THREADS: expected a positive integer, got "many"/, { SELF_REWARD_THREADS: 'many' }),
  ),
  holds('S3_ENDPOINT without a scheme', () =>
    refusedByCli(['worker'], /S3_ENDPOINT: expected http:\/\/host:port or https:\/\/host:port, got "minio:9000"/, {
      SELF_REWARD_STORE: 's3://b',
      S3_ENDPOINT: 'minio:9000',
      S3_ACCESS_KEY: 'k',
      S3_SECRET_KEY: 's',
    }),
  ),
  holds('TEMPORAL_ADDRESS without a port', () =>
    refusedByCli(['status', 'x'], /TEMPORAL_ADDRESS: expected host:port, got "temporal"/, { TEMPORAL_ADDRESS: 'temporal' }),
  ),
  holds('an S3 store without its keys', async () => {
    expect(() => storeFromEnvironment({ SELF_REWARD_STORE: 's3://bucket' })).toThrow(/S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY/);
    await refusedByCli(['worker', '--role', 'cpu'], /SELF_REWARD_STORE=s3:\/\/bucket: expected s3:\/\/bucket\[\/prefix\] with S3_ENDPOINT/, {
      SELF_REWARD_STORE: 's3://bucket',
    });
  }),
  holds('a TLS certificate file that is not there', async () => {
    expect(() => temporalConnection({ TEMPORAL_TLS_CA: join(scratch, 'ca.pem') })).toThrow(/TEMPORAL_TLS_CA: cannot read .*ca.pem \(ENOENT\)/);
    await refusedByCli(['status', 'x'], /TEMPORAL_TLS_CA: cannot read/, { TEMPORAL_TLS_CA: join(scratch, 'ca.pem'), TEMPORAL_ADDRESS: '127.0.0.1:1' });
  }),
  holds('an S3 store that does not answer, asked with a secret key', async () => {
    const store = new S3Store({
      endpoint: 'http://127.0.0.1:1',
      bucket: 'battery',
      accessKey: 'AKIA-BATTERY',
      secretKey: SECRET,
      region: 'us-east-1',
      prefix: '',
    });
    const error = await store.get('runs/x/input.json').then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/^S3 store http:\/\/127.0.0.1:1 bucket battery: /);
    expect((error as Error).message).not.toContain(SECRET);
    expect((error as Error).message).not.toContain('AKIA');
  }),
  holds('trainer devices that are not CUDA indices', () => {
    expect(() => dependenciesFromEnvironment({ SELF_REWARD_TRAINER_DEVICES: 'cuda:0,cuda:1' })).toThrow(/SELF_REWARD_TRAINER_DEVICES: expected CUDA indices/);
    // Given well, they are the GPUs the trainer sees instead of the worker's one.
    expect(dependenciesFromEnvironment({ SELF_REWARD_TRAINER_DEVICES: '0,1' }).trainer.env['CUDA_VISIBLE_DEVICES']).toBe('0,1');
    return Promise.resolve();
  }),
  holds('allowed paths that are not absolute', () => {
    expect(() => dependenciesFromEnvironment({ SELF_REWARD_ALLOWED_PATHS: 'models' })).toThrow(/SELF_REWARD_ALLOWED_PATHS: expected absolute folder paths/);
    return Promise.resolve();
  }),
];

interface Refusal {
  readonly type: string | undefined;
  readonly message: string;
  readonly activities: readonly string[];
  readonly attempts: readonly number[];
  readonly history: string;
  readonly stored: readonly string[];
}

/** Runs a round on the real workers to its failure. */
async function refusedRound(input: Record<string, unknown>, workflowId = `battery-${randomUUID()}`): Promise<Refusal> {
  const round = await new SelfRewardClient(env.client).startRound(input, { workflowId });
  const error = await round.result().then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WorkflowFailedError);
  const failure = ((error as WorkflowFailedError).cause as ActivityFailure).cause as ApplicationFailure;
  expect(failure.nonRetryable).toBe(true);
  const history = await round.workflow.fetchHistory();
  const events = history.events ?? [];
  const runId = (await round.workflow.describe()).runId;
  return {
    type: failure.type ?? undefined,
    message: failure.message,
    activities: events.flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name ?? ''] : [])),
    attempts: events.flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 0] : [])),
    history: JSON.stringify(history),
    stored: await deps.store.list(`${roundRoot(round.workflowId, runId, 1)}/`),
  };
}

/** A round refused in the check before sampling: first attempt, the named type and message, no secret anywhere, nothing stored. */
async function refusedBeforeSampling(input: Record<string, unknown>, type: string, message: RegExp): Promise<void> {
  const refusal = await refusedRound(input);
  expect(refusal).toMatchObject({ type, activities: ['prepareRound'], attempts: [1], stored: [] });
  expect(refusal.message).toMatch(message);
  expect(refusal.history).not.toContain(SECRET);
  expect(refusal.history).not.toContain('AKIA');
}

/** A copy of the test detector whose ONNX file is cut in half: its folder passes the check before sampling, its model does not load. */
async function truncatedDetector(name: string): Promise<string> {
  const folder = join(scratch, name);
  await cp((base['judge'] as { detector: string }).detector, folder, { recursive: true });
  const model = join(folder, 'onnx', 'model.onnx');
  const bytes = await readFile(model);
  await writeFile(model, bytes.subarray(0, bytes.length >> 1));
  return folder;
}

/** A round refused when its judge loads: first attempts only, BadModel naming the file, no score stored. */
async function refusedAtJudge(input: Record<string, unknown>, workflowId?: string): Promise<Refusal> {
  const refusal = await refusedRound(input, workflowId);
  expect(refusal.type).toBe('BadModel');
  expect(refusal.message).toMatch(/onnx\/model.onnx/);
  expect(refusal.activities).toContain('judgeShard');
  expect(new Set(refusal.attempts)).toEqual(new Set([1]));
  expect(refusal.stored.filter((key) => key.includes('/scores/'))).toEqual([]);
  return refusal;
}

const ROUND_CASES = [
  holds('a prompt file that is not there', () =>
    refusedBeforeSampling(round({ prompts: { file: join(scratch, 'missing.txt') } }), 'BadPrompts', /prompts: cannot read .*missing.txt/),
  ),
  holds('a credentials file as the prompt file', () =>
    refusedBeforeSampling(
      round({ prompts: { file: join(scratch, 'credentials') } }),
      'BadPrompts',
      /credentials:1: expected a line `class; prompt`.*got a line without ";"/,
    ),
  ),
  holds('a prompt file outside the allowed folders', () =>
    refusedBeforeSampling(round({ prompts: { file: '/etc/hostname' } }), 'InvalidInput', /prompts.file: \/etc\/hostname is outside the folders/),
  ),
  holds('a model folder reached through a symbolic link out of the allowed folders', async () => {
    const { symlink } = await import('node:fs/promises');
    const link = join(scratch, 'linked-etc');
    await rm(link, { force: true });
    await symlink('/etc', link);
    await refusedBeforeSampling(round({ judge: judge({ clip: link }) }), 'InvalidInput', /judge.clip: .*linked-etc is outside the folders/);
  }),
  holds('a class named constructor in a prompt file', async () => {
    const file = join(scratch, 'constructor.txt');
    await writeFile(file, 'constructor; one red circle\n');
    await refusedBeforeSampling(round({ prompts: { file } }), 'BadPrompts', /constructor.txt:1: .*got a reserved class name/);
  }),
  holds('held-out prompts that are training prompts', () =>
    refusedBeforeSampling(
      round({ evaluation: { ...(base['evaluation'] as object), prompts: (base['prompts'] as unknown[]).slice(0, 1) } }),
      'InvalidInput',
      /evaluation.prompts: 1 held-out prompt\(s\) are also training prompts/,
    ),
  ),
  holds('a generator folder that is not there', () =>
    refusedBeforeSampling(round({ generator: { base: join(scratch, 'no-generator') } }), 'BadModel', /no-generator/),
  ),
  holds('a generator folder without its UNet', async () => {
    const folder = join(scratch, 'no-unet');
    await cp(join(PACK, 'generator'), folder, { recursive: true });
    await rm(join(folder, 'unet', 'model.onnx'));
    await refusedBeforeSampling(round({ generator: { base: folder } }), 'BadModel', /no-unet\/unet\/model.onnx: not found/);
  }),
  holds('a CLIP folder as the detector', () =>
    refusedBeforeSampling(
      round({ judge: judge({ detector: join(PACK, 'clip') }) }),
      'BadModel',
      /clip\/config.json: model_type "clip" is not a supported detector/,
    ),
  ),
  holds('a captioner folder without its decoder', async () => {
    const folder = join(scratch, 'half-captioner');
    await cp(join(PACK, 'captioner'), folder, { recursive: true });
    await rm(join(folder, 'onnx', 'decoder_model_merged.onnx'));
    await refusedBeforeSampling(round({ judge: judge({ captioner: folder }) }), 'BadModel', /half-captioner\/onnx\/decoder_model_merged.onnx is missing/);
  }),
  holds('a class a closed-vocabulary detector does not know', async () => {
    const folder = join(scratch, 'closed-detector');
    await cp(join(PACK, 'detector'), folder, { recursive: true });
    await writeFile(join(folder, 'config.json'), JSON.stringify({ model_type: 'detr', id2label: { 0: 'circle', 1: 'square' } }));
    await refusedBeforeSampling(round({ judge: judge({ detector: folder }) }), 'InvalidInput', /class "triangle" is not a label of the detector/);
  }),
  holds('a tuned UNet that is not in the store', () =>
    refusedBeforeSampling(
      round({ generator: { base: (base['generator'] as { base: string }).base, tunedUnet: 'runs/nothing/lora/' } }),
      'MissingArtifact',
      /generator.tunedUnet: runs\/nothing\/lora\/unet\/model.onnx is not in the store/,
    ),
  ),
  holds('a tuned UNet outside the store', () =>
    refusedBeforeSampling(
      round({ generator: { base: (base['generator'] as { base: string }).base, tunedUnet: '../../etc/' } }),
      'InvalidInput',
      /artifact key/,
    ),
  ),
  holds('an earlier dataset that is not in the store', () =>
    refusedBeforeSampling(
      round({ includeDatasets: ['runs/nothing/dataset/'] }),
      'MissingArtifact',
      /includeDatasets.0: runs\/nothing\/dataset\/metadata.jsonl is not in the store/,
    ),
  ),
  holds('a truncated detector ONNX file', async () => {
    await refusedAtJudge(round({ judge: judge({ detector: await truncatedDetector('truncated-detector') }) }));
  }),
  holds('a workflow id that climbs out of the store', async () => {
    const workflowId = `../../battery-escape-${randomUUID()}`;
    const refusal = await refusedAtJudge(round({ judge: judge({ detector: await truncatedDetector('truncated-detector-2') }) }), workflowId);
    // What the round stored lies in its own folder under runs/, its id percent-encoded.
    expect(refusal.stored.length).toBeGreaterThan(0);
    const everything = await deps.store.list('');
    const escaped = everything.filter((key) => key.includes('battery-escape'));
    expect(escaped.length).toBe(refusal.stored.length);
    for (const key of escaped) expect(key.startsWith(`runs/${encodeURIComponent(workflowId).replace(/^\./, '%2E')}/`), key).toBe(true);
    // Nothing beside the store folder either, where a key joined naively would have climbed to.
    for (const folder of [scratch, join(scratch, '..')]) expect(existsSync(join(folder, workflowId.slice('../../'.length)))).toBe(false);
  }),
  holds('a dataset to retrain that is not in the store', () =>
    refusedBeforeSampling(
      round({ prompts: undefined, dataset: 'runs/none/dataset/' }),
      'MissingArtifact',
      /dataset: runs\/none\/dataset\/metadata.jsonl is not in the store/,
    ),
  ),
];

const run = promisify(execFile);

/** The trainer refusing bad input on its own: exit code 2 and one line naming the flag or line. */
async function trainerRefuses(args: readonly string[], message: RegExp): Promise<void> {
  const refused = await run(PYTHON, ['-m', 'loratrain', ...args], {
    cwd: join(ROOT, 'python'),
    env: { ...process.env, PYTHONPATH: join(ROOT, 'python'), OMP_NUM_THREADS: '1' },
  }).then(
    () => null,
    (e: unknown) => e as { code: number; stderr: string; stdout: string },
  );
  expect(refused?.code).toBe(2);
  expect(refused?.stderr.trim()).toMatch(message);
  expect(refused?.stderr).not.toContain(SECRET);
  expect(refused?.stdout).toMatch(/"event": "error"/);
}

const TRAINER_CASES = [
  holds('a corrupt checkpoint to resume from', async () => {
    const output = join(scratch, 'corrupt-checkpoint');
    const checkpoint = join(output, 'checkpoints', 'step-00000002');
    await mkdir(checkpoint, { recursive: true });
    await writeFile(join(checkpoint, 'state.json'), SECRET);
    const dataset = join(scratch, 'one-image-dataset');
    await mkdir(dataset, { recursive: true });
    await writeFile(join(dataset, 'a.png'), await encodePng({ width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(255) }));
    await writeFile(join(dataset, 'metadata.jsonl'), `${JSON.stringify({ file_name: 'a.png', text: 'one red circle' })}\n`);
    await trainerRefuses(
      ['--generator', join(PACK, 'generator'), '--dataset', dataset, '--output', output, '--max-steps', '1', '--resume-from', 'latest', '--skip-onnx'],
      /checkpoint .*step-00000002: state.json: not valid JSON/,
    );
  }),
  holds('an output that is a file', async () => {
    const file = join(scratch, 'output-file');
    await writeFile(file, 'x');
    await trainerRefuses(['--generator', join(PACK, 'generator'), '--dataset', scratch, '--output', file], /--output: .*output-file is a file, not a folder/);
  }),
  holds('a dataset entry that leaves the dataset folder', async () => {
    const dataset = join(scratch, 'escaping-dataset');
    await mkdir(dataset, { recursive: true });
    await writeFile(join(dataset, 'metadata.jsonl'), `${JSON.stringify({ file_name: '../credentials', text: 'a circle' })}\n`);
    await trainerRefuses(
      ['--generator', join(PACK, 'generator'), '--dataset', dataset, '--output', join(scratch, 'out'), '--max-steps', '1'],
      /metadata.jsonl line 1: file_name "..\/credentials" leads outside the dataset folder/,
    );
  }),
];

describe('the bad-input battery', () => {
  describe('configurations, refused before Temporal is contacted', () => {
    it.each(SCHEMA_CASES)('%s', (_name, check) => check());
  });

  describe('the environment of workers and the command line', () => {
    it.each(ENVIRONMENT_CASES)('%s', (_name, check) => check());
  });

  describe('rounds, refused in the check before sampling on the real workers', () => {
    let stop: () => void;
    let workers: Promise<void>;
    beforeAll(async () => {
      // One pair of workers for every case.
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      workers = withRoundWorkers(env, deps, () => released);
      stop = release;
    });
    afterAll(async () => {
      stop();
      await workers;
    });
    it.each(ROUND_CASES)('%s', (_name, check) => check());
  });

  describe('the trainer, on its own', () => {
    it.each(TRAINER_CASES)('%s', (_name, check) => check());
  });

  it('has at least 40 cases', () => {
    expect(SCHEMA_CASES.length + ENVIRONMENT_CASES.length + ROUND_CASES.length + TRAINER_CASES.length).toBeGreaterThanOrEqual(40);
  });
});
