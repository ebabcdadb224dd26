/**
 * A night of a model line: its input schema (what a Schedule's action carries) and the pure rule
 * that turns it and the line's champion into the night's round. Free of Node imports: workflow
 * code uses them.
 */
import { GATE_SCHEMA, gateRefusal, type GateSettings } from './gate.js';
import { ROUND_SCHEMA, SEED_MAX, type RoundInput } from './round.js';
import { boolean, matching, object, refine, validateInput, type Schema, type Validation } from './schema.js';

/** Line names are plain key segments and workflow id parts: lower case letters, digits, `.`, `_`, `-`. */
export const LINE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export interface NightlyInput {
  /** The model line this night improves. */
  readonly line: string;
  /** The night's round; `generator.base` is the line's base, and the line's champion supplies `generator.tunedUnet`. */
  readonly round: RoundInput;
  /** When a challenger replaces the champion. */
  readonly gate: GateSettings;
  /** Train on the champion's dataset as well as tonight's curated images, so the line's data accumulates. */
  readonly accumulate: boolean;
}

const NIGHTLY_FIELDS: Schema<NightlyInput> = object<NightlyInput>(
  {
    line: matching(LINE_NAME, {
      type: 'line name',
      expected: 'a line name: 1 to 63 lower case letters, digits, ".", "_" or "-", starting with a letter or digit',
      meaning: 'the model line this night improves; created on its first night',
    }),
    round: refine(
      { ...ROUND_SCHEMA, doc: { ...ROUND_SCHEMA.doc, type: 'round input', meaning: "the night's round; the line's champion supplies `generator.tunedUnet`" } },
      (round) => (round.generator.tunedUnet === null ? null : { field: 'generator.tunedUnet', expected: "null (a night samples from its line's champion)" }),
    ),
    gate: GATE_SCHEMA,
    accumulate: boolean({
      default: true,
      meaning: "train on the champion's dataset as well as tonight's curated images, so each promotion carries its nights' data forward",
    }),
  },
  { meaning: 'a night of a model line', required: true },
);

export const NIGHTLY_SCHEMA: Schema<NightlyInput> = refine(NIGHTLY_FIELDS, (nightly) => gateRefusal(nightly.gate, nightly.round.evaluation));

export function validateNightlyInput(input: unknown): Validation<NightlyInput> {
  return validateInput(NIGHTLY_SCHEMA, input);
}

/** What a night needs of its line: the champion to sample from, and how many nights came before. */
export interface NightContext {
  readonly night: number;
  readonly champion: { readonly tunedUnet: string | null; readonly dataset: string | null };
}

/**
 * Night n's round: sampled from the champion with seeds of its own (so nights draw new images),
 * trained on tonight's curated images and, with `accumulate`, the champion's dataset, and gated
 * against the champion.
 */
export function nightRound(nightly: NightlyInput, { night, champion }: NightContext): RoundInput {
  const { round } = nightly;
  const carried = nightly.accumulate && champion.dataset !== null ? [champion.dataset] : [];
  return {
    ...round,
    round: night,
    generator: { ...round.generator, tunedUnet: champion.tunedUnet },
    includeDatasets: [...round.includeDatasets, ...carried],
    gate: nightly.gate,
    sampling: { ...round.sampling, seed: (round.sampling.seed + (night - 1) * 1_000_003) % (SEED_MAX + 1) },
  };
}
