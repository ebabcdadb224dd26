/**
 * The judge's scores and the paper's selection rule, as pure functions of what the models said.
 */
import { instances, type Box, type Candidate } from './boxes.js';
import type { Weights } from './config.js';
import { attributesIn, namesClass, statedCount, tokenOverlap } from './text.js';

export interface Detection {
  /** Highest confidence of any proposal for the class, thresholded or not. */
  readonly confidence: number;
  /** Deduplicated instances at or above the threshold. */
  readonly instances: number;
  readonly boxes: readonly Box[];
  /** Count the prompt states for the class, or null when it states none. */
  readonly statedCount: number | null;
  /** Whether `instances` equals `statedCount`; null when the prompt states no count. */
  readonly countMatches: boolean | null;
}

export function summariseDetection(
  candidates: readonly Candidate[],
  prompt: string,
  className: string,
  synonyms: readonly string[],
  threshold: number,
  iouThreshold: number,
): Detection {
  const kept = instances(candidates, threshold, iouThreshold);
  const stated = statedCount(prompt, className, synonyms);
  return {
    confidence: candidates.reduce((best, c) => Math.max(best, c.score), 0),
    instances: kept.length,
    boxes: kept.map((c) => c.box),
    statedCount: stated,
    countMatches: stated === null ? null : kept.length === stated,
  };
}

export interface CaptionCheck {
  readonly caption: string;
  readonly namesClass: boolean;
  /** The prompt's attribute words (colours) that the caption repeats, over those the prompt has; 1 when it has none. */
  readonly attributes: number;
  /** The caption states the same count of the class as the prompt; true when the prompt states none. */
  readonly countAgrees: boolean;
  /** Dice overlap of caption and prompt words (see `tokenOverlap`). */
  readonly similarity: number;
}

export function checkCaption(caption: string, prompt: string, className: string, synonyms: readonly string[], attributeWords: readonly string[]): CaptionCheck {
  const wanted = attributesIn(prompt, attributeWords);
  const said = new Set(attributesIn(caption, attributeWords));
  const stated = statedCount(prompt, className, synonyms);
  return {
    caption,
    namesClass: namesClass(caption, className, synonyms),
    attributes: wanted.length === 0 ? 1 : wanted.filter((w) => said.has(w)).length / wanted.length,
    countAgrees: stated === null || statedCount(caption, className, synonyms) === stated,
    similarity: tokenOverlap(caption, prompt),
  };
}

/**
 * Checklist points from the caption, the stand-in for the paper's yes/no questionnaire:
 * one point each for naming the class, repeating every attribute, and stating the same count.
 */
export function checklist(check: CaptionCheck): number {
  return Number(check.namesClass) + Number(check.attributes === 1) + Number(check.countAgrees);
}

export const CHECKLIST_POINTS = 3;

/** `v` scaled to unit length (a zero vector stays zero). */
export function unitVector(v: Float32Array): Float32Array {
  let squares = 0;
  for (const x of v) squares += x * x;
  const norm = Math.sqrt(squares);
  return norm > 0 ? v.map((x) => x / norm) : new Float32Array(v.length);
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return aa > 0 && bb > 0 ? dot / Math.sqrt(aa * bb) : 0;
}

/** CLIPScore conventions: torchmetrics' max(100·cos, 0) and Hessel et al.'s 2.5·max(cos, 0). */
export function clipScore100(cosine: number): number {
  return 100 * Math.max(cosine, 0);
}

export function clipScoreHessel(cosine: number): number {
  return 2.5 * Math.max(cosine, 0);
}

export interface ScoreParts {
  readonly detection: Detection;
  readonly caption: CaptionCheck | null;
  /** Image–prompt cosine, or null when no CLIP model is configured. */
  readonly clipCosine: number | null;
}

/**
 * Combined score in [0, 1]: the weighted mean of the parts that are available,
 *   detection  = best detection confidence,
 *   checklist  = checklist points / CHECKLIST_POINTS,
 *   similarity = caption–prompt word overlap,
 *   clip       = max(cos, 0),
 *   count      = 1 if the detector's instance count equals the prompt's count, else 0.
 * A part that is missing (no captioner, no CLIP, no stated count) leaves both the sum and the
 * total weight, so scores stay comparable within one prompt.
 */
export function combinedScore(parts: ScoreParts, weights: Weights): number {
  const terms: Array<[number, number]> = [[weights.detection, parts.detection.confidence]];
  if (parts.caption !== null) {
    terms.push([weights.checklist, checklist(parts.caption) / CHECKLIST_POINTS]);
    terms.push([weights.similarity, parts.caption.similarity]);
  }
  if (parts.clipCosine !== null) terms.push([weights.clip, Math.max(parts.clipCosine, 0)]);
  if (parts.detection.countMatches !== null) terms.push([weights.count, Number(parts.detection.countMatches)]);
  const total = terms.reduce((s, [w]) => s + w, 0);
  return total > 0 ? terms.reduce((s, [w, v]) => s + w * v, 0) / total : 0;
}

export interface Ranked {
  readonly checklist: number;
  readonly confidence: number;
}

/**
 * The paper's ranking of one prompt's images: only those whose class detection reaches the
 * threshold, highest checklist tier first, then highest detection confidence (earlier image
 * first on a tie). Empty when the class was never detected.
 */
export function rank(images: readonly Ranked[], threshold: number): number[] {
  return images
    .map((image, i) => ({ image, i }))
    .filter(({ image }) => image.confidence >= threshold)
    .sort((a, b) => b.image.checklist - a.image.checklist || b.image.confidence - a.image.confidence || a.i - b.i)
    .map(({ i }) => i);
}

/** The paper's selection rule: the top of `rank`, or null to drop the prompt. */
export function select(images: readonly Ranked[], threshold: number): number | null {
  return rank(images, threshold)[0] ?? null;
}
