import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';

import { roundRoot } from '../contract/keys.js';
import { LocalFolderStore } from '../store/local.js';
import { roundInputWith, storeOnlyDependencies } from '../test/activity.js';
import { asActivityFailure } from './failures.js';
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

describe('the check before sampling: the referee', () => {
  const PACK = join(fileURLToPath(new URL('..', import.meta.url)), 'packs', 'shapes');

  /** A closed-vocabulary (YOLOS) detector folder that knows `labels`: the files the check reads, no weights. */
  async function closedVocabularyFolder(labels: readonly string[]): Promise<string> {
    const folder = await mkdtemp(join(tmpdir(), 'referee-'));
    await mkdir(join(folder, 'onnx'));
    const id2label = Object.fromEntries(labels.map((l, i) => [String(i), l]));
    await writeFile(join(folder, 'config.json'), JSON.stringify({ model_type: 'yolos', id2label }));
    await writeFile(join(folder, 'preprocessor_config.json'), '{}');
    await writeFile(join(folder, 'onnx', 'model.onnx'), '');
    return folder;
  }

  const prepare = async (referee: Record<string, unknown>) => {
    const store = new LocalFolderStore(join(await mkdtemp(join(tmpdir(), 'prepare-referee-')), 'store'));
    const input = roundInputWith({
      generator: { base: join(PACK, 'generator') },
      judge: { detector: join(PACK, 'detector'), clip: join(PACK, 'clip') },
      prompts: [{ className: 'circle', text: 'a red circle on a white background' }],
      evaluation: {
        prompts: [
          { className: 'circle', text: 'two red circles on a gray background' },
          { className: 'star', text: 'a blue star on a black background' },
        ],
        referee,
      },
    });
    // Through the one mapping every activity's errors pass (createActivities wraps each activity in it).
    return createPrepareRound(storeOnlyDependencies(store))({ root: roundRoot('wf/1', 'run-1', 1), input }).catch((e: unknown) => asActivityFailure(e));
  };

  it.skipIf(!existsSync(join(PACK, 'generator', 'model_index.json')))(
    'fails at once, naming evaluation.referee.detector, for a missing folder or a held-out class the closed vocabulary lacks',
    async () => {
      const missing = await prepare({ detector: join(tmpdir(), 'no-such-referee'), clip: join(PACK, 'clip') });
      expect(missing).toBeInstanceOf(ApplicationFailure);
      expect(missing).toMatchObject({
        type: 'BadModel',
        nonRetryable: true,
        message: expect.stringMatching(/^evaluation\.referee\.detector: model folder .* does not exist/),
      });

      const lacking = await prepare({ detector: await closedVocabularyFolder(['circle', 'square']), clip: join(PACK, 'clip') });
      expect(lacking).toMatchObject({
        type: 'InvalidInput',
        nonRetryable: true,
        message: expect.stringMatching(/^evaluation\.referee\.detector: class "star" is not a label of the detector/),
      });

      // A synonym that is a label answers for the class; the round is prepared.
      const known = await prepare({
        detector: await closedVocabularyFolder(['circle', 'pentagram']),
        clip: join(PACK, 'clip'),
        synonyms: { star: ['pentagram'] },
      });
      expect(known).toMatchObject({ heldOutPrompts: 2 });
    },
  );
});
