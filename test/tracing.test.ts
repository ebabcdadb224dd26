/**
 * Traces. The settings from the OpenTelemetry variables (off unless an endpoint is set); the
 * plugin's additions with tracing and without; the trainer's phases as spans; and a real round
 * traced end to end: an OTLP/HTTP receiver written here collects what a worker process (the
 * all-in-one entry point, with the shapes pack's models and the real trainer) and the
 * command line (`selfreward round`, `status` and `result`, as processes) export, and the spans
 * must form one trace rooted at the command line's start, with every stage's activities and
 * the trainer's phases in it.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TrainerSpans } from '../activities/trainer/spans.js';
import { EnvironmentError } from '../config/environment.js';
import { SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { tracingFromEnvironment } from '../config/tracing.js';
import { testGenerator } from '../models/testing/python.js';
import { logFieldsInterceptor } from '../observability/logs.js';
import { startTracing } from '../observability/tracing.js';
import { selfRewardPlugin, WORKFLOW_TRACING_PATH } from '../workers/plugin.js';
import { runWorker, WorkerStartError } from '../workers/setup.js';
import { dependenciesFromEnvironment } from '../workers/dependencies.js';
import { testDetector, tinyRoundInput } from './models.js';
import { freePort, REPO_ROOT, requireBinary, TEMPORAL_CLI } from './servers.js';
import { WorkerProcess } from './workerProcess.js';

/** The command line, as a process, with these variables. */
function selfreward(env: Readonly<Record<string, string>>, ...args: string[]) {
  return promisify(execFile)(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'selfreward.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    timeout: 500_000,
  });
}

describe('tracing settings', () => {
  it('are off when no endpoint is set, or an empty one', () => {
    expect(tracingFromEnvironment({}, 'selfreward-cli')).toBeNull();
    expect(tracingFromEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_SERVICE_NAME: 'named' }, 'selfreward-cli')).toBeNull();
  });

  it("post to the shared endpoint's /v1/traces, or to the traces endpoint as given", () => {
    expect(tracingFromEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }, 'selfreward-cli')).toEqual({
      url: 'http://collector:4318/v1/traces',
      serviceName: 'selfreward-cli',
    });
    const both = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example:443/otlp' };
    expect(tracingFromEnvironment(both, 'selfreward-worker-gpu')?.url).toBe('https://traces.example:443/otlp');
  });

  it('name the service after the process unless OTEL_SERVICE_NAME is set', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://localhost:4318' };
    expect(tracingFromEnvironment(env, 'selfreward-worker-gpu')?.serviceName).toBe('selfreward-worker-gpu');
    expect(tracingFromEnvironment({ ...env, OTEL_SERVICE_NAME: 'gpu-node-7' }, 'selfreward-worker-gpu')?.serviceName).toBe('gpu-node-7');
  });

  it('refuse an endpoint that is not an http(s) URL, naming the variable', async () => {
    for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) {
      expect(() => tracingFromEnvironment({ [name]: 'collector:4318' }, 'selfreward-cli')).toThrow(EnvironmentError);
      expect(() => tracingFromEnvironment({ [name]: 'collector:4318' }, 'selfreward-cli')).toThrow(new RegExp(`^${name}: expected an http`));
    }
    // A worker refuses to start on it, and a command to connect, before either reaches anything.
    const bad = { OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector:4317' };
    const error = await runWorker('all', bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerStartError);
    expect((error as Error).message).toMatch(/^OTEL_EXPORTER_OTLP_ENDPOINT: expected an http/);
    const refused = await selfreward(bad, 'status', 'any-id').then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(refused?.code).toBe(2);
    expect(refused?.stderr.trim()).toBe(
      'selfreward status: OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL, such as http://localhost:4318, got "grpc://collector:4317"',
    );
  });
});

describe('the plugin', () => {
  const dependencies = async () => dependenciesFromEnvironment({ SELF_REWARD_STORE: await mkdtemp(join(tmpdir(), 'tracing-plugin-store-')) });

  it('adds no workflow interceptors and no sink without tracing', async () => {
    const options = selfRewardPlugin({ role: 'cpu', dependencies: await dependencies() }).configureWorker({ taskQueue: 'unset' });
    expect(options.interceptors?.workflowModules ?? []).toEqual([]);
    expect(options.sinks ?? {}).toEqual({});
    expect(options.interceptors?.activity).toEqual([logFieldsInterceptor]);
    expect(options.interceptors?.client).toBeUndefined();
  });

  it("adds the workflow interceptors, the spans' sink and the activity interceptors with tracing, keeping the user's own", async () => {
    const tracing = startTracing({ url: 'http://127.0.0.1:9/v1/traces', serviceName: 'unused' }, () => undefined);
    try {
      const own = { activity: [() => ({})], workflowModules: ['/users/own-interceptors.js'] };
      const cpu = selfRewardPlugin({ role: 'cpu', dependencies: await dependencies(), tracing }).configureWorker({ taskQueue: 'unset', interceptors: own });
      expect(cpu.interceptors?.workflowModules).toEqual(['/users/own-interceptors.js', WORKFLOW_TRACING_PATH]);
      expect(cpu.sinks?.['exporter']).toBe(tracing.sinks.exporter);
      expect(cpu.interceptors?.activity).toEqual([own.activity[0], logFieldsInterceptor, ...tracing.activityInterceptors]);
      // The worker's own client, with which activities signal progress, carries the activity's trace on.
      expect(cpu.interceptors?.client?.workflow).toEqual(tracing.clientInterceptors.workflow);
      const gpu = selfRewardPlugin({ role: 'gpu', dependencies: await dependencies(), tracing }).configureWorker({ taskQueue: 'unset' });
      expect(gpu.interceptors?.workflowModules ?? []).toEqual([]);
      expect(gpu.interceptors?.activity).toEqual([logFieldsInterceptor, ...tracing.activityInterceptors]);
      expect(gpu.interceptors?.client?.workflow).toEqual(tracing.clientInterceptors.workflow);
    } finally {
      await tracing.shutdown();
    }
  });
});

describe('the exporter', () => {
  it('reports a collector it cannot reach through its warning function, and throws nothing', async () => {
    const warnings: string[] = [];
    const tracing = startTracing({ url: `http://127.0.0.1:${await freePort()}/v1/traces`, serviceName: 'test' }, (message) => warnings.push(message));
    trace.getTracer('test').startSpan('lost').end();
    await tracing.shutdown();
    expect(warnings).toEqual([expect.stringMatching(/^traces: spans left unexported: connect ECONNREFUSED/)]);
  });
});

describe("the trainer's phases", () => {
  it('are spans under the given parent: one per phase, with steps, loss, checkpoints and how it ended', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tracer = provider.getTracer('test');
    const activity = tracer.startSpan('RunActivity:trainLora');
    const spans = new TrainerSpans(tracer, trace.setSpan(ROOT_CONTEXT, activity));
    const events = [
      { event: 'start', step: 2, total: 6 },
      { event: 'phase', phase: 'load' },
      { event: 'phase', phase: 'cache' },
      { event: 'phase', phase: 'cache' },
      { event: 'phase', phase: 'train' },
      { event: 'step', step: 3, total: 6, loss: 0.5 },
      { event: 'checkpoint', step: 4, path: '/work/checkpoints/step-00000004' },
      { event: 'step', step: 6, total: 6, loss: 0.25 },
      { event: 'phase', phase: 'save' },
      { event: 'error', kind: 'failure', message: 'OSError: disk full' },
    ];
    for (const event of events) spans.record(event);
    spans.end(1);
    const ended = exporter.getFinishedSpans();
    expect(ended.map((s) => s.name)).toEqual(['TrainerPhase:load', 'TrainerPhase:cache', 'TrainerPhase:train', 'TrainerPhase:save']);
    for (const span of ended) {
      expect(span.parentSpanId).toBe(activity.spanContext().spanId);
      expect(span.attributes).toMatchObject({ 'trainer.start_step': 2, 'trainer.total_steps': 6 });
    }
    const train = ended[2]!;
    expect(train.attributes).toMatchObject({ 'trainer.phase': 'train', 'trainer.step': 6, 'trainer.loss': 0.25 });
    expect(train.events.map((e) => [e.name, e.attributes])).toEqual([
      ['checkpoint', { 'trainer.step': 4, 'trainer.checkpoint': '/work/checkpoints/step-00000004' }],
    ]);
    expect(ended.slice(0, 3).map((s) => s.status.code)).toEqual([0, 0, 0]);
    expect(ended[3]!.status).toEqual({ code: 2, message: 'failure: OSError: disk full' });
  });

  it('end without an error when the trainer was stopped', () => {
    const exporter = new InMemorySpanExporter();
    const spans = new TrainerSpans(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer('test'), ROOT_CONTEXT);
    spans.record({ event: 'phase', phase: 'train' });
    spans.record({ event: 'stopped', step: 5, checkpoint: null });
    spans.end(143);
    const [train] = exporter.getFinishedSpans();
    expect(train?.status.code).toBe(0);
    expect(train?.events.map((e) => [e.name, e.attributes])).toEqual([['stopped', { 'trainer.step': 5 }]]);
  });
});

/** One span as the receiver decoded it from OTLP/JSON. */
interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** `service.name` of the process that exported it. */
  readonly service: string;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly events: readonly { readonly name: string; readonly attributes: Readonly<Record<string, unknown>> }[];
  readonly statusCode: number;
  readonly start: bigint;
}

interface OtlpKeyValue {
  readonly key: string;
  readonly value: Readonly<Record<string, unknown>>;
}
interface OtlpRequest {
  readonly resourceSpans?: readonly {
    readonly resource?: { readonly attributes?: readonly OtlpKeyValue[] };
    readonly scopeSpans?: readonly {
      readonly spans?: readonly {
        readonly traceId: string;
        readonly spanId: string;
        readonly parentSpanId?: string;
        readonly name: string;
        readonly startTimeUnixNano: string | number;
        readonly attributes?: readonly OtlpKeyValue[];
        readonly events?: readonly { readonly name: string; readonly attributes?: readonly OtlpKeyValue[] }[];
        readonly status?: { readonly code?: number };
      }[];
    }[];
  }[];
}

/** OTLP's typed values as plain ones (`stringValue`, `intValue`, `doubleValue`, `boolValue`). */
const plain = (pairs: readonly OtlpKeyValue[] = []): Record<string, unknown> =>
  Object.fromEntries(pairs.map(({ key, value }) => [key, Object.values(value)[0]]));

function decode(request: OtlpRequest): ReceivedSpan[] {
  return (request.resourceSpans ?? []).flatMap((resourceSpans) => {
    const service = String(plain(resourceSpans.resource?.attributes)['service.name']);
    return (resourceSpans.scopeSpans ?? []).flatMap((scope) =>
      (scope.spans ?? []).map((span) => ({
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId || undefined,
        name: span.name,
        service,
        attributes: plain(span.attributes),
        events: (span.events ?? []).map((event) => ({ name: event.name, attributes: plain(event.attributes) })),
        statusCode: span.status?.code ?? 0,
        start: BigInt(span.startTimeUnixNano),
      })),
    );
  });
}

/** An OTLP/HTTP receiver of traces in JSON: what an OpenTelemetry Collector's `otlp` receiver takes on port 4318. */
async function startReceiver(): Promise<{ readonly endpoint: string; readonly spans: ReceivedSpan[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v1/traces' || request.headers['content-type'] !== 'application/json') {
        response.writeHead(404).end();
        return;
      }
      spans.push(...decode(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpRequest));
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { endpoint: `http://127.0.0.1:${port}`, spans, close: () => new Promise((done) => server.close(() => done())) };
}

describe('a traced round', () => {
  let env: TestWorkflowEnvironment;
  let scratch: string;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'tracing-'));
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireBinary(TEMPORAL_CLI) }, searchAttributes: Object.values(SEARCH_ATTRIBUTES) },
    });
    receiver = await startReceiver();
  });

  afterAll(async () => {
    await WorkerProcess.stopAll();
    await env?.teardown();
    await receiver?.close();
  });

  it("is one trace from the command line's start through the workflow and every activity to the trainer's phases", { timeout: 600_000 }, async () => {
    const [generator, detector] = await Promise.all([testGenerator(scratch), testDetector(scratch)]);
    const shards = 2;
    const input = tinyRoundInput(generator, detector, { shards, sampling: { steps: 2 }, lora: { maxSteps: 8, batchSize: 2, checkpointEvery: 4 } });
    const inputFile = join(scratch, 'round.json');
    await writeFile(inputFile, JSON.stringify(input));
    const traced = { TEMPORAL_ADDRESS: env.address, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
    const worker = await WorkerProcess.start(join(scratch, 'work'), { ...traced, SELF_REWARD_STORE: join(scratch, 'store') });
    const workflowId = `traced-${randomUUID()}`;
    // The start exits at once, so its span reaches the receiver only if the command exports it on its way out;
    // the status query and the waits for the result are not traced.
    await selfreward(traced, 'round', inputFile, '--id', workflowId);
    await selfreward(traced, 'status', workflowId);
    await selfreward(traced, 'result', workflowId);
    // A stopping worker exports what it still holds before it exits.
    await worker.stop();

    const spans = receiver.spans;
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const named = (name: string) => spans.filter((s) => s.name === name);
    const children = (parent: ReceivedSpan, name: string) => named(name).filter((s) => s.parentSpanId === parent.spanId);

    // One trace, one root: the command line's start; every other span's parent was received too.
    expect(new Set(spans.map((s) => s.traceId)).size, spans.map((s) => s.name).join(', ')).toBe(1);
    const roots = spans.filter((s) => s.parentSpanId === undefined);
    expect(roots.map((s) => [s.name, s.service])).toEqual([['StartWorkflow:selfRewardRound', 'selfreward-cli']]);
    expect(spans.filter((s) => s.parentSpanId !== undefined && !byId.has(s.parentSpanId)).map((s) => s.name)).toEqual([]);
    expect(roots[0]!.attributes['temporalWorkflowId']).toBe(workflowId);
    // An activity's log lines name the trace; the exporter had nothing to complain about.
    expect(worker.log).toContain(`trace_id: '${roots[0]!.traceId}'`);
    expect(worker.log).not.toContain('traces:');

    const [run, ...others] = children(roots[0]!, 'RunWorkflow:selfRewardRound');
    expect(others).toEqual([]);
    expect(run?.service).toBe('selfreward-worker-all');
    // Each stage's activities, scheduled by the workflow and run under the span that scheduled them.
    const stages = {
      prepareRound: 1,
      sampleShard: shards,
      judgeShard: shards,
      curateDataset: 1,
      trainLora: 1,
      sampleReferences: 1,
      // One held-out prompt: one shard of the evaluation.
      evaluateShard: 1,
      evaluateRound: 1,
      writeReport: 1,
    };
    for (const [activity, count] of Object.entries(stages)) {
      const scheduled = children(run!, `StartActivity:${activity}`);
      const ran = scheduled.flatMap((start) => children(start, `RunActivity:${activity}`));
      expect(new Set(ran.map((s) => s.attributes['temporalActivityId'])).size, activity).toBe(count);
      expect(ran.every((s) => s.service === 'selfreward-worker-all' && s.attributes['temporalWorkflowId'] === workflowId)).toBe(true);
    }

    // Progress travels with heartbeats: no signal spans crowd the trace.
    expect(spans.filter((s) => s.name.includes('Signal')).map((s) => s.name)).toEqual([]);

    // The trainer's phases, in order, under the training attempt that succeeded.
    const training = named('RunActivity:trainLora').find((s) => s.statusCode === 1)!;
    const phases = spans.filter((s) => s.name.startsWith('TrainerPhase:') && s.parentSpanId === training.spanId).sort((a, b) => (a.start < b.start ? -1 : 1));
    expect(phases.map((s) => s.name)).toEqual(['TrainerPhase:load', 'TrainerPhase:cache', 'TrainerPhase:train', 'TrainerPhase:save', 'TrainerPhase:export']);
    const train = phases[2]!;
    expect(train.attributes).toMatchObject({ 'trainer.phase': 'train', 'trainer.start_step': 0, 'trainer.total_steps': 8, 'trainer.step': 8 });
    expect(train.attributes['trainer.loss']).toEqual(expect.any(Number));
    expect(train.events.map((e) => [e.name, e.attributes['trainer.step']])).toEqual([['checkpoint', 4]]);
  });
});
