/**
 * Configuration files of the command line: JSON or YAML holding a round's input (the same
 * schema the workflow checks), a campaign's or a night's, or a preset built from a model pack's
 * manifest.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';

import { parse as parseYaml } from 'yaml';

import { validateCampaignInput, type CampaignInput } from '../config/campaign.js';
import { validateNightlyInput, type NightlyInput } from '../config/nightly.js';
import { validateRoundInput, type RoundInput } from '../config/round.js';
import { describeErrors, RESERVED_KEYS } from '../config/schema.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function parseConfigText(text: string, source: string): unknown {
  try {
    return ['.yaml', '.yml'].includes(extname(source).toLowerCase()) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    const reason = (error as Error).message.split('\n')[0];
    throw new ConfigError(`${source}: not valid ${extname(source) === '.json' ? 'JSON' : 'JSON or YAML'} (${reason})`);
  }
}

/** A pack's `pack.json` trainer defaults use the trainer's flag names in snake_case; the round input uses camelCase. */
const PACK_LORA_FIELDS: Readonly<Record<string, string>> = {
  rank: 'rank',
  learning_rate: 'learningRate',
  lr_scheduler: 'lrScheduler',
  max_steps: 'maxSteps',
  batch_size: 'batchSize',
  seed: 'seed',
  epochs: 'epochs',
  resolution: 'resolution',
  snr_gamma: 'snrGamma',
  caption_dropout: 'captionDropout',
  mixed_precision: 'mixedPrecision',
  gradient_checkpointing: 'gradientCheckpointing',
  export_precision: 'exportPrecision',
};

interface PackManifest {
  readonly prompts?: { readonly train?: string; readonly eval?: string };
  readonly sampling?: {
    readonly steps?: number;
    readonly guidance_scale?: number;
    readonly pool_guidance_scale?: number;
    readonly scheduler?: string;
    readonly pool_scheduler?: string;
    readonly width?: number;
    readonly height?: number;
  };
  readonly judge?: { readonly detection_threshold?: number; readonly rule?: string; readonly per_prompt?: number };
  readonly grammar?: { readonly colours?: readonly string[]; readonly backgrounds?: readonly string[] };
  readonly lora?: Readonly<Record<string, unknown>>;
}

/**
 * A round input for a model pack folder (generator/, detector/, captioner/, clip/, prompts/):
 * the pack's own sampling, judge and trainer defaults from its pack.json when it has one. With
 * `referee` (the pack has a referee/ detector), the evaluation is also graded by it and the
 * pack's CLIP, among the colours and backgrounds of the pack's prompt grammar.
 */
export function packPreset(pack: string, manifest: PackManifest | null, referee = false): Record<string, unknown> {
  const at = (path: string) => join(pack, path);
  const lora: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(manifest?.lora ?? {})) {
    const field = PACK_LORA_FIELDS[key];
    if (field === undefined)
      throw new ConfigError(`${at('pack.json')}: lora.${key} is not a trainer setting this preset knows (known: ${Object.keys(PACK_LORA_FIELDS).join(', ')})`);
    lora[field] = value;
  }
  const sampling = manifest?.sampling;
  return {
    generator: { base: at('generator') },
    judge: {
      detector: at('detector'),
      captioner: at('captioner'),
      clip: at('clip'),
      ...(manifest?.judge?.detection_threshold === undefined ? {} : { threshold: manifest.judge.detection_threshold }),
    },
    selection: {
      ...(manifest?.judge?.rule === undefined ? {} : { rule: manifest.judge.rule }),
      ...(manifest?.judge?.per_prompt === undefined ? {} : { perPrompt: manifest.judge.per_prompt }),
    },
    prompts: { file: at(manifest?.prompts?.train ?? 'prompts/train.txt') },
    sampling: {
      ...(sampling?.steps === undefined ? {} : { steps: sampling.steps }),
      // The training pool may be sampled at a lower guidance, and with another scheduler, than the
      // model is used and compared with.
      ...(sampling?.guidance_scale === undefined ? {} : { guidanceScale: sampling.pool_guidance_scale ?? sampling.guidance_scale }),
      ...(sampling?.scheduler === undefined ? {} : { scheduler: sampling.pool_scheduler ?? sampling.scheduler }),
      ...(sampling?.width === undefined ? {} : { width: sampling.width }),
      ...(sampling?.height === undefined ? {} : { height: sampling.height }),
    },
    lora,
    evaluation: {
      prompts: { file: at(manifest?.prompts?.eval ?? 'prompts/eval.txt') },
      ...(sampling?.pool_guidance_scale === undefined || sampling.guidance_scale === undefined ? {} : { guidanceScale: sampling.guidance_scale }),
      ...(sampling?.pool_scheduler === undefined || sampling.scheduler === undefined ? {} : { scheduler: sampling.scheduler }),
      ...(referee
        ? {
            referee: {
              detector: at('referee'),
              clip: at('clip'),
              ...(manifest?.grammar?.colours === undefined ? {} : { colours: manifest.grammar.colours }),
              ...(manifest?.grammar?.backgrounds === undefined ? {} : { backgrounds: manifest.grammar.backgrounds }),
            },
          }
        : {}),
    },
  };
}

/**
 * Objects are merged key by key; anything else in `override` replaces what `base` has. A key that
 * would reach an object's prototype (`__proto__`, `constructor`, `prototype`) is refused: merged
 * as a field it would set the prototype and slip its fields past the schema's unknown-field check.
 */
export function mergeConfig(base: unknown, override: unknown, at = ''): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(base) || !isObject(override)) return override === undefined ? base : override;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const path = at === '' ? key : `${at}.${key}`;
    if (RESERVED_KEYS.includes(key)) throw new ConfigError(`${path}: not a field (a key that would reach an object's prototype)`);
    merged[key] = mergeConfig(base[key], value, path);
  }
  return merged;
}

export const PRESETS = ['shapes'] as const;

export interface ConfigSources {
  /** A JSON or YAML file; with a preset, its fields override the preset's. */
  readonly file?: string;
  readonly preset?: string;
  /** The repository folder presets resolve packs in. */
  readonly root: string;
  /** Fields over the file's and the preset's (a script's variant of a round). */
  readonly override?: unknown;
}

function presetConfig(preset: string, root: string): unknown {
  if (!(PRESETS as readonly string[]).includes(preset)) throw new ConfigError(`--preset: expected one of ${PRESETS.join(', ')}, got ${JSON.stringify(preset)}`);
  const pack = resolve(root, 'packs', preset);
  const manifestPath = join(pack, 'pack.json');
  const manifest = existsSync(manifestPath) ? (parseConfigText(readFileSync(manifestPath, 'utf8'), manifestPath) as PackManifest) : null;
  // The referee is trained apart from the pack's other models: a pack without one evaluates with its judge alone.
  return packPreset(pack, manifest, existsSync(join(pack, 'referee', 'config.json')));
}

function fileConfig(file: string): unknown {
  const path = resolve(file);
  if (!existsSync(path)) throw new ConfigError(`${path}: no such configuration file`);
  if (!statSync(path).isFile()) throw new ConfigError(`${path}: not a file; expected a JSON or YAML configuration file`);
  return parseConfigText(readFileSync(path, 'utf8'), path);
}

function requireSource({ file, preset }: ConfigSources): void {
  if (file === undefined && preset === undefined) throw new ConfigError('give a configuration file or --preset');
}

export function loadRoundConfig(sources: ConfigSources): RoundInput {
  requireSource(sources);
  const preset = sources.preset === undefined ? {} : presetConfig(sources.preset, sources.root);
  const fromFile = mergeConfig(preset, sources.file === undefined ? undefined : fileConfig(sources.file));
  const checked = validateRoundInput(mergeConfig(fromFile, sources.override));
  if (!checked.ok) throw new ConfigError(`round configuration: ${describeErrors(checked.errors)}`);
  return checked.value;
}

/** A nightly file holds `{ line: ..., round: ..., gate: ..., accumulate: ... }`; a preset becomes the round; `--line` names the line. */
export function loadNightlyConfig(sources: ConfigSources, overrides: { readonly line?: string }): NightlyInput {
  requireSource(sources);
  const preset = sources.preset === undefined ? {} : { round: presetConfig(sources.preset, sources.root) };
  const fromFile = mergeConfig(preset, sources.file === undefined ? undefined : fileConfig(sources.file));
  const checked = validateNightlyInput(mergeConfig(fromFile, overrides.line === undefined ? undefined : { line: overrides.line }));
  if (!checked.ok) throw new ConfigError(`nightly configuration: ${describeErrors(checked.errors)}`);
  return checked.value;
}

/** A campaign file holds `{ round: ..., rounds, ... }`; a preset becomes the first round. */
export function loadCampaignConfig(sources: ConfigSources, overrides: { readonly rounds?: number }): CampaignInput {
  requireSource(sources);
  const preset = sources.preset === undefined ? {} : { round: presetConfig(sources.preset, sources.root) };
  const fromFile = mergeConfig(preset, sources.file === undefined ? undefined : fileConfig(sources.file));
  const checked = validateCampaignInput(mergeConfig(fromFile, overrides.rounds === undefined ? undefined : { rounds: overrides.rounds }));
  if (!checked.ok) throw new ConfigError(`campaign configuration: ${describeErrors(checked.errors)}`);
  return checked.value;
}
