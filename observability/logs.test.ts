import { describe, expect, it } from 'vitest';

import { roundRoot } from '../contract/keys.js';
import { activityLogFields, jsonLogLine, LOG_FIELDS } from './logs.js';

describe('activityLogFields', () => {
  it("reads the round, stage and shard off a round's activity request", () => {
    const root = roundRoot('nightly/line-a', 'run-1', 12);
    expect(activityLogFields('sampleShard', { root, inputKey: `${root}/input.json`, shard: 3 })).toEqual({ stage: 'sample', round: 12, shard: 3 });
    expect(activityLogFields('trainLora', { root, inputKey: 'k', dataset: 'd' })).toEqual({ stage: 'train', round: 12 });
    expect(activityLogFields('submitChallenger', { name: 'line-a' })).toEqual({ stage: 'line' });
  });

  it('adds nothing it cannot read: an unknown activity, a request that is not an object, a key that is not a round', () => {
    expect(activityLogFields('someoneElses', undefined)).toEqual({});
    expect(activityLogFields('prepareRound', 'text')).toEqual({ stage: 'prepare' });
    expect(activityLogFields('writeReport', { root: 'lines/a/current.json' })).toEqual({ stage: 'report' });
  });

  it('documents every field it adds', () => {
    const fields = activityLogFields('judgeShard', { root: roundRoot('w', 'r', 1), shard: 0 });
    for (const name of Object.keys(fields)) expect(Object.keys(LOG_FIELDS)).toContain(name);
  });
});

describe('jsonLogLine', () => {
  it('writes one JSON object: time, level, message and the fields', () => {
    const line = jsonLogLine({
      level: 'INFO',
      message: 'sampleShard done in 1.0 s',
      timestampNanos: 1_765_000_000_123_000_000n,
      meta: { round: 2, stage: 'sample' },
    });
    expect(line).not.toContain('\n');
    expect(JSON.parse(line)).toEqual({ time: '2025-12-06T05:46:40.123Z', level: 'INFO', message: 'sampleShard done in 1.0 s', round: 2, stage: 'sample' });
  });
});
