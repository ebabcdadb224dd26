/**
 * Where workers and the command line send traces, from the standard OpenTelemetry variables:
 * tracing is on when an OTLP endpoint is set and off otherwise. One reader for both, so a
 * round's client and its workers are configured alike.
 */
import { fromEnvironment } from './environment.js';

export interface TracingSettings {
  /** The OTLP/HTTP URL spans are posted to. */
  readonly url: string;
  /** `service.name` on every span the process exports. */
  readonly serviceName: string;
}

/**
 * The process's tracing settings, or null when no endpoint is set (an empty value counts as
 * unset, as the OpenTelemetry specification has it). As in the specification, the traces
 * endpoint is used as given and the shared endpoint gets the signal's path, `/v1/traces`.
 */
export function tracingFromEnvironment(env: NodeJS.ProcessEnv, defaultServiceName: string): TracingSettings | null {
  const traces = fromEnvironment(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') || undefined;
  const shared = fromEnvironment(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') || undefined;
  const url = traces ?? (shared === undefined ? undefined : `${shared.replace(/\/+$/, '')}/v1/traces`);
  if (url === undefined) return null;
  return { url, serviceName: fromEnvironment(env, 'OTEL_SERVICE_NAME') || defaultServiceName };
}
