import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';

import { roundRoot } from '../contract/keys.js';
import { LocalFolderStore } from '../store/local.js';
import { roundInputWith, storeOnlyDependencies } from '../test/activity.js';
import { createPrepareRound, deviceRefusal } from './prepare.js';

const roundInput = (lora: Record<string, unknown>) => roundInputWith({ lora });

describe('the check before sampling: the training precision against the worker’s device', () => {
  it('refuses fp16 on a CPU worker, naming lora.mixedPrecision, and accepts bf16 and no there, and fp16 on CUDA', () => {
    expect(deviceRefusal(roundInput({ mixedPrecision: 'fp16' }), 'cpu')).toMatch(/^lora\.mixedPrecision: "fp16" needs a CUDA worker.*device is cpu/);
    expect(deviceRefusal(roundInput({ mixedPrecision: 'bf16', gradientCheckpointing: true }), 'cpu')).toBeNull();
    expect(deviceRefusal(roundInput({}), 'cpu')).toBeNull();
    expect(deviceRefusal(roundInput({ mixedPrecision: 'fp16' }), 'cuda:1')).toBeNull();
  });

  it('fails the round at once, before reading any file, when a CPU worker is asked for fp16', async () => {
    const store = new LocalFolderStore(join(await mkdtemp(join(tmpdir(), 'prepare-activity-')), 'store'));
    const error = await createPrepareRound(storeOnlyDependencies(store))({
      root: roundRoot('wf/1', 'run-1', 1),
      input: roundInput({ mixedPrecision: 'fp16' }),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toMatchObject({
      type: 'InvalidInput',
      nonRetryable: true,
      message: expect.stringMatching(/^lora\.mixedPrecision: "fp16" needs a CUDA worker/),
    });
  });
});
