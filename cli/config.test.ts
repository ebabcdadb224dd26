import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { validateRoundInput } from '../config/round.js';
import { GENEVAL_COLOURS } from '../models/judge/config.js';
import { ConfigError, loadCampaignConfig, loadRoundConfig, mergeConfig, packPreset, parseConfigText } from './config.js';

const minimal = {
  generator: { base: 'g' },
  judge: { detector: 'd', clip: 'c' },
  prompts: { file: 'train.txt' },
  evaluation: { prompts: { file: 'eval.txt' } },
};

describe('configuration files', () => {
  it('reads JSON and YAML, and names the file of a syntax error', () => {
    expect(parseConfigText('{"shards": 2}', 'a.json')).toEqual({ shards: 2 });
    expect(parseConfigText('shards: 2\nsampling:\n  steps: 10\n', 'a.yaml')).toEqual({ shards: 2, sampling: { steps: 10 } });
    expect(() => parseConfigText('{shards', 'bad.json')).toThrow(/bad.json: not valid JSON/);
  });

  it('validates a round file with the workflow schema, naming the field', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'cli-config-'));
    await writeFile(
      join(folder, 'round.yml'),
      'generator: {base: g}\njudge: {detector: d, clip: c}\nprompts: {file: p}\nevaluation: {prompts: {file: e}}\nshards: 0\n',
    );
    expect(() => loadRoundConfig({ file: join(folder, 'round.yml'), root: folder })).toThrow(/shards: expected an integer in \[1, 1000\], got 0/);
    expect(() => loadRoundConfig({ root: folder })).toThrow(ConfigError);
    expect(() => loadRoundConfig({ file: join(folder, 'missing.json'), root: folder })).toThrow(/no such configuration file/);
  });

  it('builds a preset from a pack manifest, and lets a file override it', async () => {
    const preset = packPreset('/packs/shapes', {
      prompts: { train: 'prompts/train.txt', eval: 'prompts/eval.txt' },
      sampling: {
        steps: 20,
        guidance_scale: 7.5,
        pool_guidance_scale: 1.5,
        scheduler: 'DDIMScheduler',
        pool_scheduler: 'EulerAncestralDiscreteScheduler',
        width: 64,
        height: 64,
      },
      judge: { detection_threshold: 0.42, rule: 'paper', per_prompt: 4 },
      lora: { rank: 8, learning_rate: 1e-3, lr_scheduler: 'cosine', max_steps: 300, batch_size: 16, seed: 0, caption_dropout: 0.1 },
    });
    expect(preset).toMatchObject({
      generator: { base: '/packs/shapes/generator' },
      judge: { detector: '/packs/shapes/detector', threshold: 0.42 },
      selection: { rule: 'paper', perPrompt: 4 },
      prompts: { file: '/packs/shapes/prompts/train.txt' },
      sampling: { steps: 20, guidanceScale: 1.5, scheduler: 'EulerAncestralDiscreteScheduler', width: 64 },
      evaluation: { guidanceScale: 7.5, scheduler: 'DDIMScheduler' },
      lora: { rank: 8, learningRate: 1e-3, lrScheduler: 'cosine', maxSteps: 300, batchSize: 16, seed: 0, captionDropout: 0.1 },
    });
    // Without pool settings the pool is sampled, and the comparison made, as the model is used.
    const plain = packPreset('/p', { sampling: { guidance_scale: 7.5, scheduler: 'DDIMScheduler' } });
    expect(plain).toMatchObject({ sampling: { guidanceScale: 7.5, scheduler: 'DDIMScheduler' } });
    expect(plain['evaluation']).toEqual({ prompts: { file: '/p/prompts/eval.txt' } });
    expect(() => packPreset('/p', { lora: { warmup: 3 } })).toThrow(/lora.warmup is not a trainer setting/);
    expect(mergeConfig(preset, { lora: { rank: 4 }, shards: 3 })).toMatchObject({ lora: { rank: 4, maxSteps: 300 }, shards: 3 });
  });

  it("sets the referee of a pack that has one, with its grammar's colours and backgrounds, and leaves it null otherwise", () => {
    const manifest = { grammar: { colours: ['red', 'green'], backgrounds: ['white', 'gray'] } };
    const refereed = packPreset('/packs/shapes', manifest, true);
    expect(refereed['evaluation']).toMatchObject({
      referee: { detector: '/packs/shapes/referee', clip: '/packs/shapes/clip', colours: ['red', 'green'], backgrounds: ['white', 'gray'] },
    });
    const checked = validateRoundInput({ ...refereed, judge: { detector: 'd', clip: 'c' } });
    expect(checked.ok && checked.value.evaluation.referee).toMatchObject({ presenceThreshold: 0.3, countThreshold: 0.9, colours: ['red', 'green'] });
    expect(packPreset('/packs/shapes', manifest)['evaluation']).not.toHaveProperty('referee');
    // A pack with a referee but no grammar: GenEval's colours, no background check.
    const bare = validateRoundInput({ ...packPreset('/p', null, true), judge: { detector: 'd', clip: 'c' } });
    expect(bare.ok && bare.value.evaluation.referee).toMatchObject({ colours: GENEVAL_COLOURS, backgrounds: [] });
  });

  it('--preset shapes sets the referee once the pack has a referee/ folder', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cli-preset-'));
    const pack = join(root, 'packs', 'shapes');
    await mkdir(join(pack, 'referee'), { recursive: true });
    await writeFile(join(pack, 'pack.json'), JSON.stringify({ grammar: { colours: ['red'], backgrounds: ['white'] } }));
    expect(loadRoundConfig({ preset: 'shapes', root }).evaluation.referee).toBeNull();
    await writeFile(join(pack, 'referee', 'config.json'), '{}');
    expect(loadRoundConfig({ preset: 'shapes', root }).evaluation.referee).toMatchObject({
      detector: join(pack, 'referee'),
      clip: join(pack, 'clip'),
      colours: ['red'],
      backgrounds: ['white'],
    });
  });

  it('reads a campaign file and its rounds override', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'cli-campaign-'));
    await writeFile(join(folder, 'campaign.json'), JSON.stringify({ round: minimal, rounds: 5 }));
    expect(loadCampaignConfig({ file: join(folder, 'campaign.json'), root: folder }, {}).rounds).toBe(5);
    expect(loadCampaignConfig({ file: join(folder, 'campaign.json'), root: folder }, { rounds: 2 }).rounds).toBe(2);
  });
});
