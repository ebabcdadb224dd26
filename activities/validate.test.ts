import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import { artifactKeys, roundRoot } from '../contract/keys.js';
import { LocalFolderStore } from '../store/local.js';
import { putJson } from '../store/store.js';
import { roundInputWith, runActivity, storedInput, storeOnlyDependencies } from '../test/activity.js';
import { createValidateLora, validationPrompts } from './validate.js';

const prompts = (n: number) => Array.from({ length: n }, (_, i) => ({ className: 'circle', text: `${i + 1} red circles` }));

describe('validationPrompts', () => {
  it('withholds nothing for a round of one LoRA', async () => {
    expect(await validationPrompts(roundInputWith({ prompts: prompts(10) }))).toBeNull();
  });

  it("withholds the split's training prompts, with their index, class and text", async () => {
    const withheld = await validationPrompts(roundInputWith({ prompts: prompts(10), lora: { seeds: 2, validationShare: 0.3 } }));
    expect(withheld).toHaveLength(3);
    for (const p of withheld!) expect(p).toEqual({ promptIndex: p.promptIndex, className: 'circle', text: `${p.promptIndex + 1} red circles` });
  });

  it('fails naming lora.seeds when one training prompt cannot be split', async () => {
    const error = await validationPrompts(roundInputWith({ prompts: prompts(1), lora: { seeds: 2 } })).catch((e: unknown) => e);
    expect(error).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    expect((error as Error).message).toContain('lora.seeds: 2 LoRAs need a validation split, and 1 training prompt(s) cannot be split');
  });
});

describe('validateLora', () => {
  it('returns a stored manifest as it is, without the full comparison, and loads no model', async () => {
    const store = new LocalFolderStore(await mkdtemp(join(tmpdir(), 'validate-')));
    const deps = storeOnlyDependencies(store);
    const root = roundRoot('validate-test', 'r', 1);
    const input = roundInputWith({ prompts: prompts(5), lora: { seeds: 2 } });
    const result = {
      manifest: artifactKeys.validationManifest(root, 1),
      seed: 1,
      lora: `${root}/seeds/seed-1/lora/`,
      prompts: 1,
      pairs: 4,
      accuracyBase: 0.5,
      accuracyTuned: 0.75,
      winRate: 0.6,
      finalLoss: 0.02,
    };
    await putJson(store, result.manifest, { ...result, comparison: { pairs: 4 } });
    const request = { root, inputKey: await storedInput(store, root, input), lora: result.lora, seed: 1 };
    expect(await runActivity(new MockActivityEnvironment(), createValidateLora(deps), request)).toEqual(result);
  });

  it('refuses a LoRA that was not trained, naming its prefix', async () => {
    const store = new LocalFolderStore(await mkdtemp(join(tmpdir(), 'validate-')));
    const root = roundRoot('validate-test', 'r', 1);
    const input = roundInputWith({ prompts: prompts(5), lora: { seeds: 2 } });
    const request = { root, inputKey: await storedInput(store, root, input), lora: `${root}/seeds/seed-3/lora/`, seed: 3 };
    const error = await runActivity(new MockActivityEnvironment(), createValidateLora(storeOnlyDependencies(store)), request).catch((e: unknown) => e);
    expect(error).toMatchObject({ type: 'MissingArtifact' });
    expect((error as Error).message).toContain(`${root}/seeds/seed-3/lora/unet/: not found`);
  });
});
