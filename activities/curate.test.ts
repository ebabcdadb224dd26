import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import { validateRoundInput, type RoundInput } from '../config/round.js';
import { LocalFolderStore } from '../store/local.js';
import { putJson } from '../store/store.js';
import { roundInputWith, runActivity, storedInput, storeOnlyDependencies } from '../test/activity.js';
import { createCurateDataset } from './curate.js';
import type { ActivityDependencies } from './dependencies.js';
import { chooseImages, curate } from './selection.js';
import { artifactKeys, roundRoot } from '../contract/keys.js';
import { validationSplit } from '../contract/seeds.js';
import type { ImageScore, PromptScores } from '../contract/records.js';

function score(key: string, detection: number, checklist: number, combined = detection): ImageScore {
  return { key, seed: 0, detection, instances: detection >= 0.5 ? 1 : 0, countMatches: null, caption: `caption of ${key}`, checklist, clip: 30, combined };
}

const paper = { rule: 'paper', minCombined: 0, perPrompt: 1, requireCount: false } as const;
const combined = { rule: 'combined', minCombined: 0, perPrompt: 1, requireCount: false } as const;

describe('selection rule', () => {
  it("keeps the paper's choice: top checklist tier among detected images, then highest detection", () => {
    const images = [score('a', 0.9, 1), score('b', 0.6, 3), score('c', 0.7, 3), score('d', 0.4, 3)];
    expect(chooseImages(images, paper, 0.5)).toEqual([2]);
  });

  it('drops a prompt whose class is never detected, saying why', () => {
    expect(chooseImages([score('a', 0.2, 3), score('b', 0.4, 3)], paper, 0.5)).toBe('class not detected at 0.5 in any of 2 images');
  });

  it('keeps the highest combined score above the minimum with the combined rule', () => {
    const images = [score('a', 0.9, 0, 0.3), score('b', 0.1, 0, 0.8)];
    expect(chooseImages(images, { ...combined, minCombined: 0.5 }, 0.5)).toEqual([1]);
    expect(chooseImages(images, { ...combined, minCombined: 0.2, perPrompt: 5 }, 0.5)).toEqual([1, 0]);
    expect(chooseImages(images, { ...combined, minCombined: 0.9 }, 0.5)).toBe('no image reached combined score 0.9');
  });

  it('keeps up to perPrompt images in rank order, only those that pass the rule', () => {
    const images = [score('a', 0.9, 1), score('b', 0.6, 3), score('c', 0.7, 3), score('d', 0.4, 3)];
    expect(chooseImages(images, { ...paper, perPrompt: 2 }, 0.5)).toEqual([2, 1]);
    expect(chooseImages(images, { ...paper, perPrompt: 8 }, 0.5)).toEqual([2, 1, 0]);
  });

  it('with requireCount, passes over images whose instance count differs from the stated count', () => {
    const counted = (key: string, detection: number, checklist: number, countMatches: boolean | null, combinedScore = detection): ImageScore => ({
      ...score(key, detection, checklist, combinedScore),
      statedCount: countMatches === null ? null : 3,
      countMatches,
    });
    // b is the paper's choice but draws the wrong number; c is next and draws three.
    const images = [counted('a', 0.9, 1, true), counted('b', 0.8, 3, false), counted('c', 0.7, 3, true), counted('d', 0.4, 3, true)];
    expect(chooseImages(images, paper, 0.5)).toEqual([1]);
    expect(chooseImages(images, { ...paper, requireCount: true }, 0.5)).toEqual([2]);
    expect(chooseImages(images, { ...paper, requireCount: true, perPrompt: 8 }, 0.5)).toEqual([2, 0]);
    // d has the count but is not detected: the rule does not pass it, so the count cannot keep it.
    const wrong = [counted('a', 0.9, 1, false), counted('b', 0.8, 3, false), counted('d', 0.4, 3, true)];
    expect(chooseImages(wrong, { ...paper, requireCount: true }, 0.5)).toBe('detector count differs from the stated count in every image that passes the rule');
    // The combined rule the same way.
    expect(chooseImages(images, { ...combined, requireCount: true, perPrompt: 2 }, 0.5)).toEqual([0, 2]);
    // A prompt that states no count is unaffected.
    const uncounted = [counted('a', 0.9, 1, null), counted('b', 0.8, 3, null)];
    expect(chooseImages(uncounted, { ...paper, requireCount: true }, 0.5)).toEqual(chooseImages(uncounted, paper, 0.5));
    // An input stored before the option existed lacks it: off.
    const { requireCount: _, ...older } = paper;
    expect(chooseImages(images, older as typeof paper, 0.5)).toEqual([1]);
  });

  it('counts prompts dropped for the count among the reasons', () => {
    const image = (key: string, countMatches: boolean | null): ImageScore => ({ ...score(key, 0.8, 3), countMatches });
    const prompt = (promptIndex: number, images: ImageScore[]): PromptScores => ({ promptIndex, className: 'circle', text: `p${promptIndex}`, images });
    const result = curate(
      [
        prompt(0, [image('a', false), image('b', false)]),
        prompt(1, [image('c', false), image('d', true)]),
        prompt(2, [image('e', null)]),
        prompt(3, [score('f', 0.1, 0)]),
      ],
      { ...paper, requireCount: true },
      0.5,
    );
    expect(result.kept.map((k) => k.image.key)).toEqual(['d', 'e']);
    expect(result.perClass).toEqual({
      circle: {
        kept: 2,
        dropped: 2,
        reasons: { 'detector count differs from the stated count in every image that passes the rule': 1, 'class not detected at 0.5 in any of 1 images': 1 },
      },
    });
  });

  it('counts kept and dropped prompts per class with reasons', () => {
    const prompt = (promptIndex: number, className: string, images: ImageScore[]): PromptScores => ({
      promptIndex,
      className,
      text: `p${promptIndex}`,
      images,
    });
    const result = curate(
      [prompt(1, 'circle', [score('x', 0.1, 0)]), prompt(0, 'circle', [score('y', 0.8, 2)]), prompt(2, 'square', [score('z', 0.9, 1)])],
      paper,
      0.5,
    );
    expect(result.kept.map((k) => k.prompt.promptIndex)).toEqual([0, 2]);
    const many = curate([prompt(0, 'circle', [score('a', 0.6, 1), score('b', 0.9, 1), score('c', 0.2, 1)])], { ...paper, perPrompt: 3 }, 0.5);
    expect(many.kept.map((k) => [k.image.key, k.sampleIndex])).toEqual([
      ['b', 1],
      ['a', 0],
    ]);
    expect(many.perClass).toEqual({ circle: { kept: 2, dropped: 0, reasons: {} } });
    expect(result.perClass).toEqual({
      circle: { kept: 1, dropped: 1, reasons: { 'class not detected at 0.5 in any of 1 images': 1 } },
      square: { kept: 1, dropped: 0, reasons: {} },
    });
  });
});

describe('curateDataset', () => {
  async function storeDependencies(): Promise<{ store: LocalFolderStore; deps: ActivityDependencies }> {
    const store = new LocalFolderStore(await mkdtemp(join(tmpdir(), 'curate-')));
    return { store, deps: storeOnlyDependencies(store) };
  }

  it('writes each kept image beside its own prompt, the metadata, then the manifest; a retry returns the manifest', async () => {
    const { store, deps } = await storeDependencies();
    const checked = validateRoundInput({
      generator: { base: 'g' },
      judge: { detector: 'd', clip: 'c' },
      prompts: { file: 'unused.txt' },
      evaluation: { prompts: { file: 'unused.txt' } },
      shards: 2,
    });
    if (!checked.ok) throw new Error('bad test input');
    const input: RoundInput = checked.value;
    const root = roundRoot('curate-test', 'run-1', 1);
    // Prompt 1 (shard 1) is dropped; prompts 0 and 2 (shard 0) keep their second image.
    const records: Record<number, PromptScores> = {
      0: { promptIndex: 0, className: 'circle', text: 'one red circle', images: [score('s/0-0', 0.6, 1), score('s/0-1', 0.7, 3)] },
      1: { promptIndex: 1, className: 'square', text: 'two blue squares', images: [score('s/1-0', 0.1, 3)] },
      2: { promptIndex: 2, className: 'triangle', text: 'a green triangle', images: [score('s/2-0', 0.9, 0), score('s/2-1', 0.55, 2)] },
    };
    for (const r of Object.values(records)) {
      for (const image of r.images) await store.put(image.key, `pixels of ${image.key}`);
      await putJson(store, artifactKeys.scoreRecord(root, r.promptIndex % 2, r.promptIndex), r);
    }
    await putJson(store, artifactKeys.judgeManifest(root, 0), { shard: 0, records: [0, 2].map((i) => artifactKeys.scoreRecord(root, 0, i)) });
    await putJson(store, artifactKeys.judgeManifest(root, 1), { shard: 1, records: [artifactKeys.scoreRecord(root, 1, 1)] });

    const curateDataset = createCurateDataset(deps);
    const inputKey = await storedInput(deps.store, root, input);
    const request = { root, inputKey, judged: [0, 1].map((shard) => artifactKeys.judgeManifest(root, shard)), include: [] };
    const result = await runActivity(new MockActivityEnvironment(), curateDataset, request);
    expect(result).toMatchObject({ kept: 2, included: 0, dropped: 1, dataset: artifactKeys.dataset(root) });
    expect(result.perClass['square']).toEqual({ kept: 0, dropped: 1, reasons: { 'class not detected at 0.5 in any of 1 images': 1 } });

    const rows = (await store.get(artifactKeys.datasetMetadata(root)))
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((r) => [r['file_name'], r['text'], r['class'], r['source']])).toEqual([
      ['00000-001.png', 'one red circle', 'circle', 's/0-1'],
      ['00002-001.png', 'a green triangle', 'triangle', 's/2-1'],
    ]);
    for (const row of rows) {
      const image = await store.get(`${artifactKeys.dataset(root)}${String(row['file_name'])}`);
      expect(image.toString()).toBe(`pixels of ${String(row['source'])}`);
    }
    expect(await runActivity(new MockActivityEnvironment(), curateDataset, request)).toEqual(result);

    // A later round includes this dataset: its images and rows join the later round's own.
    const later = roundRoot('curate-test', 'run-2', 2);
    const combined = await runActivity(new MockActivityEnvironment(), curateDataset, { root: later, inputKey, judged: [], include: [result.dataset] });
    expect(combined).toMatchObject({ kept: 2, included: 2, dropped: 0, dataset: artifactKeys.dataset(later) });
    expect(combined.perClass['circle']).toMatchObject({ kept: 1 });
    const laterRows = (await store.get(artifactKeys.datasetMetadata(later)))
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(laterRows.map((r) => [r['file_name'], r['text'], r['included_from']])).toEqual([
      ['included-00-00000-001.png', 'one red circle', result.dataset],
      ['included-00-00002-001.png', 'a green triangle', result.dataset],
    ]);
    expect((await store.get(`${combined.dataset}included-00-00000-001.png`)).toString()).toBe('pixels of s/0-1');
  });

  it("with several LoRAs, leaves the validation prompts out, an included dataset's images of their text too", async () => {
    const { store, deps } = await storeDependencies();
    const texts = ['one red circle', 'two blue squares', 'a green triangle', 'three red stars', 'a blue cross'];
    const prompts = texts.map((text) => ({ className: text.split(' ').at(-1)!.replace(/s$/, ''), text }));
    const input = roundInputWith({ prompts, shards: 1, lora: { seeds: 2 } });
    const [withheld] = validationSplit(5, input.lora.validationShare, input.lora.validationSeed) as [number];
    const root = roundRoot('curate-seeds', 'r', 1);
    for (const [i, p] of prompts.entries()) {
      const images = [score(`s/${i}-0`, 0.9, 3), score(`s/${i}-1`, 0.8, 3)];
      for (const image of images) await store.put(image.key, `pixels of ${image.key}`);
      await putJson(store, artifactKeys.scoreRecord(root, 0, i), { promptIndex: i, ...p, images });
    }
    await putJson(store, artifactKeys.judgeManifest(root, 0), { shard: 0, records: prompts.map((_, i) => artifactKeys.scoreRecord(root, 0, i)) });
    // An earlier night's dataset holds an image of the withheld prompt and one of another.
    const other = (withheld + 1) % 5;
    const earlier = 'runs/earlier/r/round-001/dataset/';
    await store.put(`${earlier}a.png`, 'a');
    await store.put(`${earlier}b.png`, 'b');
    await store.put(
      `${earlier}metadata.jsonl`,
      [texts[withheld], texts[other]].map((text, i) => JSON.stringify({ file_name: `${'ab'[i]}.png`, text })).join('\n'),
    );

    const request = { root, inputKey: await storedInput(deps.store, root, input), judged: [artifactKeys.judgeManifest(root, 0)], include: [earlier] };
    const result = await runActivity(new MockActivityEnvironment(), createCurateDataset(deps), request);
    expect(result).toMatchObject({ kept: 5, included: 1, dropped: 0, withheld: { prompts: 1, images: 3 } });
    const rows = (await store.get(artifactKeys.datasetMetadata(root))).toString().trim().split('\n');
    const rowTexts = rows.map((l) => (JSON.parse(l) as { text: string }).text);
    expect(rowTexts).not.toContain(texts[withheld]);
    expect(rowTexts.sort()).toEqual(
      texts
        .filter((_, i) => i !== withheld)
        .concat([texts[other]!])
        .sort(),
    );
    expect(await store.exists(`${artifactKeys.dataset(root)}included-00-a.png`)).toBe(false);
  });

  it('refuses to include something that is not a curated dataset, naming it', async () => {
    const { deps } = await storeDependencies();
    const root = roundRoot('curate-include', 'r', 1);
    const request = { root, inputKey: await storedInput(deps.store, root, roundInputWith()), judged: [], include: ['runs/nothing-here/dataset/'] };
    const error = await runActivity(new MockActivityEnvironment(), createCurateDataset(deps), request).catch((e: unknown) => e);
    expect(error).toMatchObject({ type: 'MissingArtifact', nonRetryable: true });
    expect((error as Error).message).toContain('runs/nothing-here/dataset/metadata.jsonl: not found');
  });
});
