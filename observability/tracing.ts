/**
 * Traces: one OpenTelemetry tracer provider per process, exporting spans in batches over
 * OTLP/HTTP (JSON). It is registered as the process's global provider, with W3C trace-context
 * propagation and an async-local context, because that is what the Temporal interceptors carry
 * a trace with: from the client's start, through the workflow (its spans leave the sandbox
 * through a sink), to each activity; and what lets code inside an activity (the trainer's
 * phases) open spans under the activity's span with @opentelemetry/api alone.
 */
import { context, diag, DiagLogLevel, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { loggingErrorHandler, setGlobalErrorHandler, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { ClientInterceptors, WorkflowClientInterceptor } from '@temporalio/client';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';

import type { TracingSettings } from '../config/tracing.js';

/** What a worker adds to be traced (the plugin adds the workflow half, a module of the bundle, itself). */
export interface WorkerTracing {
  /**
   * For a Temporal `Client`, the command line's or the worker's own (with which activities update
   * model lines): the workflows it starts, signals, updates or cancels continue the caller's trace.
   */
  readonly clientInterceptors: ClientInterceptors & { readonly workflow: WorkflowClientInterceptor[] };
  /** Each activity a span under the workflow's span that scheduled it; its log lines carry the trace and span ids. */
  readonly activityInterceptors: readonly ActivityInterceptorsFactory[];
  /** The sink through which the workflow sandbox's spans reach the exporter. */
  readonly sinks: { readonly exporter: ReturnType<typeof makeWorkflowExporter> };
}

export interface Tracing extends WorkerTracing {
  /** Exports the spans still buffered and unregisters the provider. A failed export is reported through `warn`, never thrown. */
  shutdown(): Promise<void>;
}

/**
 * The client calls that are traced: those that start or change a workflow. Queries and
 * describes are not: `selfreward round --wait` asks for progress every second, and each would
 * be a trace of its own.
 */
function startsAndChanges(traced: OpenTelemetryWorkflowClientInterceptor): WorkflowClientInterceptor {
  return {
    start: (input, next) => traced.start(input, next),
    startWithDetails: (input, next) => traced.startWithDetails(input, next),
    signal: (input, next) => traced.signal(input, next),
    signalWithStart: (input, next) => traced.signalWithStart(input, next),
    startUpdate: (input, next) => traced.startUpdate(input, next),
    startUpdateWithStart: (input, next) => traced.startUpdateWithStart(input, next),
    cancel: (input, next) => traced.cancel(input, next),
    terminate: (input, next) => traced.terminate(input, next),
  };
}

/**
 * Starts the process's tracing; once per process, since the provider becomes the global one.
 * The exporter's own problems (a collector that cannot be reached, say) go to `warn`: they never
 * fail the work being traced.
 */
export function startTracing(settings: TracingSettings, warn: (message: string) => void): Tracing {
  const report = (message: string) => warn(`traces: ${message}`);
  const ignore = () => undefined;
  diag.setLogger({ error: report, warn: report, info: ignore, debug: ignore, verbose: ignore }, DiagLogLevel.WARN);
  // A failed export of a batch reaches the SDK's error handler, whose default would log the whole stack.
  setGlobalErrorHandler((error) => report(`a batch of spans was dropped: ${typeof error === 'string' ? error : (error.message ?? error.name ?? error.code)}`));
  const resource = Resource.default().merge(new Resource({ [ATTR_SERVICE_NAME]: settings.serviceName }));
  const processor = new BatchSpanProcessor(new OTLPTraceExporter({ url: settings.url }));
  const provider = new BasicTracerProvider({ resource, spanProcessors: [processor] });
  provider.register({ contextManager: new AsyncLocalStorageContextManager().enable(), propagator: new W3CTraceContextPropagator() });
  return {
    clientInterceptors: { workflow: [startsAndChanges(new OpenTelemetryWorkflowClientInterceptor())] },
    activityInterceptors: [
      (ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) }),
    ],
    sinks: { exporter: makeWorkflowExporter(processor, resource) },
    async shutdown() {
      try {
        await provider.shutdown();
      } catch (error) {
        report(`spans left unexported: ${(error as Error).message}`);
      } finally {
        setGlobalErrorHandler(loggingErrorHandler());
        trace.disable();
        context.disable();
        propagation.disable();
        diag.disable();
      }
    },
  };
}
