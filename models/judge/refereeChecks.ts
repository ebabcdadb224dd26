/**
 * The referee's GenEval-style checks on one image, as pure functions of what its models said:
 * the prompt's class present, its stated count, its colour (CLIP zero-shot on the object's crop),
 * its background (CLIP zero-shot on the whole image). Free of model code so the evaluation's
 * records and tests can use them.
 */
import { instances, type Box, type Candidate } from './boxes.js';
import { cosine } from './scores.js';
import { findClass, words } from './text.js';

/** What the prompt asks the referee to check besides the class: its colour and background, when it names them. */
export interface PromptAttributes {
  readonly colour: string | null;
  readonly background: string | null;
}

/** How far before the class noun a colour may stand: past a count and another adjective ("two small red stars"). */
const COLOUR_WINDOW = 3;

/**
 * The colour and background a prompt names, read from its words: the colour is the vocabulary
 * colour closest before the class's first mention (within COLOUR_WINDOW words), so "a red circle
 * on a white background" asks for a red circle, not a white one; the background is a background
 * word right before "background". Null for what the prompt does not name from the vocabularies.
 */
export function promptAttributes(
  text: string,
  className: string,
  synonyms: readonly string[],
  colours: readonly string[],
  backgrounds: readonly string[],
): PromptAttributes {
  const tokens = words(text);
  const at = findClass(text, className, synonyms);
  let colour: string | null = null;
  if (at >= 0) {
    for (let i = at - 1; i >= Math.max(0, at - COLOUR_WINDOW) && colour === null; i--) if (colours.includes(tokens[i]!)) colour = tokens[i]!;
  }
  let background: string | null = null;
  for (let i = 1; i < tokens.length && background === null; i++) {
    if (tokens[i] === 'background' && backgrounds.includes(tokens[i - 1]!)) background = tokens[i - 1]!;
  }
  return { colour, background };
}

/** The CLIP text the colour check compares an object's crop with (GenEval's template). */
export const colourQuery = (colour: string, className: string) => `a photo of a ${colour} ${className}`;
/** The CLIP text the background check compares the whole image with. */
export const backgroundQuery = (background: string) => `a photo on a ${background} background`;

/** The label whose text embedding is closest (cosine) to the image's; the first on a tie. */
export function zeroShot(image: Float32Array, texts: readonly Float32Array[], labels: readonly string[]): string {
  let best = 0;
  let bestScore = -Infinity;
  texts.forEach((t, i) => {
    const score = cosine(image, t);
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  });
  return labels[best]!;
}

/** The referee's verdict on one image. Each check is null when the prompt asks nothing of it. */
export interface RefereeVerdict {
  /** Highest confidence of any proposal for the class. */
  readonly presence: number;
  /** The class found at `presenceThreshold`. */
  readonly present: boolean;
  /** Deduplicated detections of the class at `countThreshold`. */
  readonly instances: number;
  /** `instances` equals the prompt's stated count; null when it states none. */
  readonly countCorrect: boolean | null;
  /** CLIP's colour for the object's crop; null when the prompt names no colour or the class is absent. */
  readonly colour: string | null;
  /** The crop's colour is the prompt's; false when the class is absent (GenEval); null when the prompt names no colour. */
  readonly colourCorrect: boolean | null;
  /** CLIP's background for the whole image; null when the prompt names none. */
  readonly background: string | null;
  readonly backgroundCorrect: boolean | null;
  /** Every applicable check is right (presence always applies). */
  readonly allCorrect: boolean;
}

/** The box the colour check crops: the class's highest-scoring proposal at the presence threshold, or null. */
export function bestBox(candidates: readonly Candidate[], presenceThreshold: number): Box | null {
  let best: Candidate | null = null;
  for (const c of candidates) if (c.score >= presenceThreshold && (best === null || c.score > best.score)) best = c;
  return best?.box ?? null;
}

export interface RefereeFindings {
  readonly candidates: readonly Candidate[];
  readonly statedCount: number | null;
  readonly wanted: PromptAttributes;
  /** CLIP's pick on the best box's crop; null when not asked (no colour in the prompt, no box). */
  readonly pickedColour: string | null;
  /** CLIP's pick on the whole image; null when not asked. */
  readonly pickedBackground: string | null;
}

export interface RefereeThresholds {
  readonly presenceThreshold: number;
  readonly countThreshold: number;
  readonly iouThreshold: number;
}

/** GenEval's per-image rule: the class present and every check the prompt asks for (not null) right. */
export function allCorrect(present: boolean, checks: readonly (boolean | null)[]): boolean {
  return present && checks.every((c) => c !== false);
}

export function refereeVerdict(f: RefereeFindings, t: RefereeThresholds): RefereeVerdict {
  const presence = f.candidates.reduce((best, c) => Math.max(best, c.score), 0);
  const present = f.candidates.some((c) => c.score >= t.presenceThreshold);
  const counted = instances(f.candidates, t.countThreshold, t.iouThreshold).length;
  const countCorrect = f.statedCount === null ? null : counted === f.statedCount;
  const colour = f.wanted.colour === null || !present ? null : f.pickedColour;
  const colourCorrect = f.wanted.colour === null ? null : present && colour === f.wanted.colour;
  const background = f.wanted.background === null ? null : f.pickedBackground;
  const backgroundCorrect = f.wanted.background === null ? null : background === f.wanted.background;
  return {
    presence,
    present,
    instances: counted,
    countCorrect,
    colour,
    colourCorrect,
    background,
    backgroundCorrect,
    allCorrect: allCorrect(present, [countCorrect, colourCorrect, backgroundCorrect]),
  };
}
