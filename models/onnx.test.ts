import { describe, expect, it } from 'vitest';

import { ExecutionProviderError } from './errors.js';
import { parseDevice } from './onnx.js';

describe('parseDevice', () => {
  it('reads cpu and cuda devices', () => {
    expect(parseDevice('cpu')).toEqual({ name: 'cpu' });
    expect(parseDevice('cuda')).toEqual({ name: 'cuda', deviceId: 0 });
    expect(parseDevice('cuda:3')).toEqual({ name: 'cuda', deviceId: 3 });
  });

  it('names the accepted forms on anything else', () => {
    for (const bad of ['gpu', 'cuda:', 'cuda:x', 'CPU', 'cuda:1:2']) {
      expect(() => parseDevice(bad)).toThrow(ExecutionProviderError);
      expect(() => parseDevice(bad)).toThrow(/device must be "cpu", "cuda" or "cuda:N"/);
    }
  });
});
