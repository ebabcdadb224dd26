import type { MetricMeter, MetricTags } from '@temporalio/common';

/** A meter that keeps what is recorded, by metric name: the SDK's meter is tested by the SDK. */
export function recordingMeter() {
  const recorded: { name: string; kind: string; value: number; tags: MetricTags }[] = [];
  const created: string[] = [];
  const instrument = (name: string, kind: string) => {
    created.push(name);
    const record = (value: number, tags: MetricTags = {}) => recorded.push({ name, kind, value, tags });
    return {
      name,
      unit: undefined,
      description: undefined,
      valueType: 'float' as const,
      kind,
      add: record,
      record,
      set: record,
      withTags: () => instrument(name, kind),
    };
  };
  const meter = {
    createCounter: (name: string) => instrument(name, 'counter'),
    createHistogram: (name: string) => instrument(name, 'histogram'),
    createGauge: (name: string) => instrument(name, 'gauge'),
    withTags: () => meter,
  } as unknown as MetricMeter;
  return { meter, recorded, created };
}
