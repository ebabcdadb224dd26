/**
 * The blind pairs of `selfreward review`: one per held-out prompt and seed, base against tuned,
 * each with its sides drawn once and for all. Pure.
 */
import { createHash } from 'node:crypto';

import type { EvaluationRecord, HumanChoice } from '../contract/records.js';

export type Side = 'left' | 'right';
/** What a reviewer answers: the left image, the right one, or neither. */
export type ReviewAnswer = Side | 'same';

export const REVIEW_ANSWERS: readonly ReviewAnswer[] = ['left', 'right', 'same'];

export interface ReviewPair {
  /** Its number on the page, 0-based in prompt then seed order. */
  readonly pair: number;
  readonly promptIndex: number;
  readonly className: string;
  readonly text: string;
  readonly seed: number;
  /** Which generator's image shows on the left. */
  readonly left: 'base' | 'tuned';
  /** The store keys of the images shown on each side. */
  readonly images: Readonly<Record<Side, string>>;
}

/**
 * Whether the tuned image goes on the left: a hash of the round's folder and the pair, so a
 * pair keeps its sides across reloads and servers, and no rule a reviewer could learn (such as
 * "tuned is left on even pairs") predicts them.
 */
export function tunedOnLeft(root: string, promptIndex: number, seed: number): boolean {
  const digest = createHash('sha256').update(`${root}\n${promptIndex}\n${seed}`).digest();
  return (digest[0]! & 1) === 1;
}

/** The round's pairs from its evaluation records: every seed whose base and tuned images are both recorded. */
export function reviewPairs(root: string, records: readonly EvaluationRecord[]): ReviewPair[] {
  const sorted = [...records].sort((a, b) => a.promptIndex - b.promptIndex);
  const pairs: ReviewPair[] = [];
  for (const r of sorted) {
    r.seeds.forEach((seed, s) => {
      const base = r.base[s]?.key;
      const tuned = r.tuned[s]?.key;
      if (base === undefined || tuned === undefined) return;
      const left = tunedOnLeft(root, r.promptIndex, seed) ? 'tuned' : 'base';
      const images = left === 'tuned' ? { left: tuned, right: base } : { left: base, right: tuned };
      pairs.push({ pair: pairs.length, promptIndex: r.promptIndex, className: r.className, text: r.text, seed, left, images });
    });
  }
  return pairs;
}

/** The generator a reviewer's answer prefers, or 'same'. */
export function resolveAnswer(pair: ReviewPair, answer: ReviewAnswer): HumanChoice {
  if (answer === 'same') return 'same';
  const right = pair.left === 'tuned' ? 'base' : 'tuned';
  return answer === 'left' ? pair.left : right;
}

/** A vote the page sent, checked against the round's pairs; the message says what is wrong. */
export type ParsedVote = { readonly ok: true; readonly pair: ReviewPair; readonly answer: ReviewAnswer } | { readonly ok: false; readonly message: string };

export function parseVote(body: unknown, pairs: readonly ReviewPair[]): ParsedVote {
  if (typeof body !== 'object' || body === null)
    return { ok: false, message: 'expected a JSON object {"pair": <number>, "choice": "left" | "right" | "same"}' };
  const { pair, choice } = body as { pair?: unknown; choice?: unknown };
  if (typeof pair !== 'number' || !Number.isInteger(pair) || pair < 0 || pair >= pairs.length) {
    return { ok: false, message: `pair: expected an integer in [0, ${pairs.length - 1}], got ${JSON.stringify(pair ?? null)}` };
  }
  if (typeof choice !== 'string' || !(REVIEW_ANSWERS as readonly string[]).includes(choice)) {
    return { ok: false, message: `choice: expected "left", "right" or "same", got ${JSON.stringify(choice ?? null)}` };
  }
  return { ok: true, pair: pairs[pair]!, answer: choice as ReviewAnswer };
}
