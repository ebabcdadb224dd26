/**
 * The worker process's Temporal runtime: where its logs go (text or JSON lines, at a level) and,
 * when an address is given, a Prometheus endpoint with the SDK's metrics and ours (`metrics.ts`),
 * each labelled with the worker's role and device. Installed once, before any connection.
 */
import { IllegalStateError } from '@temporalio/common';
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';

import { jsonLogLine } from './logs.js';
import { histogramBuckets } from './metrics.js';

export interface TelemetrySettings {
  /** `host:port` of the Prometheus endpoint (`/metrics`); null: no endpoint. */
  readonly metricsAddress: string | null;
  readonly logFormat: 'text' | 'json';
  readonly logLevel: LogLevel;
  /** Labels on every metric. */
  readonly role: string;
  readonly device: string;
}

/**
 * Installs the process's runtime with these settings. A process whose runtime exists already
 * (one that ran a test server first) keeps it, and its logging and metrics with it.
 */
export function installTelemetry(settings: TelemetrySettings): void {
  const logger =
    settings.logFormat === 'json'
      ? new DefaultLogger(settings.logLevel, (entry) => process.stdout.write(`${jsonLogLine(entry)}\n`))
      : new DefaultLogger(settings.logLevel);
  try {
    Runtime.install({
      logger,
      telemetryOptions: {
        logging: { forward: {}, filter: { core: 'WARN', other: 'ERROR' } },
        ...(settings.metricsAddress === null
          ? {}
          : {
              metrics: {
                prometheus: {
                  bindAddress: settings.metricsAddress,
                  countersTotalSuffix: true,
                  useSecondsForDurations: true,
                  histogramBucketOverrides: histogramBuckets(),
                },
                globalTags: { role: settings.role, device: settings.device },
              },
            }),
      },
    });
  } catch (error) {
    if (!(error instanceof IllegalStateError)) throw error;
  }
}
