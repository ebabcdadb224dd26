import { describe, expect, it } from 'vitest';

import { FAILURE_TYPES } from '../contract/failures.js';
import { createMetrics, histogramBuckets, initializeCounters, meterName, METRICS, SDK_METRICS, type MetricSpec } from './metrics.js';
import { recordingMeter } from './testing/meter.js';

const specs = Object.entries(METRICS as Readonly<Record<string, MetricSpec>>);

describe('the metrics table', () => {
  it('names every metric of the loop selfreward_*, counters ending in _total, labels in snake case', () => {
    for (const [key, spec] of specs) {
      expect(spec.name, key).toMatch(/^selfreward_[a-z_]+$/);
      expect(spec.name.endsWith('_total'), key).toBe(spec.instrument === 'counter');
      for (const label of spec.labels) expect(label, key).toMatch(/^[a-z][a-z_]*$/);
      // The worker's own labels are added by the exporter; a metric repeating one would clash.
      expect(spec.labels, key).not.toContain('role');
      expect(spec.labels, key).not.toContain('device');
    }
    expect(new Set(specs.map(([, s]) => s.name)).size).toBe(specs.length);
    for (const name of Object.values(SDK_METRICS)) expect(name).toMatch(/^temporal_/);
  });

  it('gives every histogram, and only histograms, increasing bucket bounds, which the exporter gets by name', () => {
    for (const [key, spec] of specs) {
      expect(spec.buckets !== undefined, key).toBe(spec.instrument === 'histogram');
      const bounds = spec.buckets ?? [];
      expect(
        [...bounds].sort((a, b) => a - b),
        key,
      ).toEqual(bounds);
      expect(new Set(bounds).size, key).toBe(bounds.length);
    }
    expect(Object.keys(histogramBuckets()).sort()).toEqual(
      specs
        .filter(([, s]) => s.instrument === 'histogram')
        .map(([, s]) => s.name)
        .sort(),
    );
  });
});

describe('createMetrics', () => {
  it('records each metric on the instrument of its kind, under the name the exporter completes, with its labels', () => {
    const { meter, recorded } = recordingMeter();
    const metrics = createMetrics(() => meter);
    metrics.imagesSampled.record(4, { class: 'circle' });
    metrics.imageSeconds.record(0.25, { stage: 'sample' });
    metrics.trainerLoss.record(0.5, {});
    expect(recorded).toEqual([
      { name: 'selfreward_images_sampled', kind: 'counter', value: 4, tags: { class: 'circle' } },
      { name: 'selfreward_image_seconds', kind: 'histogram', value: 0.25, tags: { stage: 'sample' } },
      { name: 'selfreward_trainer_loss', kind: 'gauge', value: 0.5, tags: {} },
    ]);
    expect(meterName(METRICS.storeBytes)).toBe('selfreward_store_bytes');
  });

  it('creates no instrument before its first use, and each once: the meter exists only once the runtime is installed', () => {
    const { meter, created } = recordingMeter();
    let asked = 0;
    const metrics = createMetrics(() => {
      asked += 1;
      return meter;
    });
    expect(asked).toBe(0);
    metrics.activityAttempts.record(1, { activity: 'sampleShard' });
    metrics.activityAttempts.record(1, { activity: 'judgeShard' });
    expect(created).toEqual(['selfreward_activity_attempts']);
  });
});

describe('initializeCounters', () => {
  it("starts every activity's attempts and each kind of failure at 0, so a first failure makes a rate", () => {
    const { meter, recorded } = recordingMeter();
    initializeCounters(
      createMetrics(() => meter),
      ['sampleShard', 'trainLora'],
    );
    expect(recorded.every((r) => r.value === 0)).toBe(true);
    expect(recorded.filter((r) => r.name === 'selfreward_activity_attempts').map((r) => r.tags)).toEqual([
      { activity: 'sampleShard' },
      { activity: 'trainLora' },
    ]);
    const failures = recorded.filter((r) => r.name === 'selfreward_activity_failures' && r.tags['activity'] === 'trainLora').map((r) => r.tags['type']);
    expect(failures).toEqual([...Object.keys(FAILURE_TYPES), 'Retryable', 'Cancelled']);
    expect(recorded.filter((r) => r.name === 'selfreward_judge_image_reads')).toEqual([]);
  });

  it("starts a judging worker's image reads from the cache and from the store at 0", () => {
    const { meter, recorded } = recordingMeter();
    initializeCounters(
      createMetrics(() => meter),
      ['sampleShard', 'judgeShard'],
    );
    expect(recorded.filter((r) => r.name === 'selfreward_judge_image_reads').map((r) => [r.tags['source'], r.value])).toEqual([
      ['cache', 0],
      ['store', 0],
    ]);
  });
});
