/** The selection rule over judged prompts, as a pure function of the score records. */
import type { SelectionSettings } from '../config/round.js';
import { rank } from '../models/judge/index.js';
import type { ClassCounts } from '../contract/activities.js';
import type { ImageScore, PromptScores } from '../contract/records.js';

export interface Kept {
  readonly prompt: PromptScores;
  readonly image: ImageScore;
  /** The image's place among its prompt's samples. */
  readonly sampleIndex: number;
}

export interface Dropped {
  readonly prompt: PromptScores;
  readonly reason: string;
}

export interface Curation {
  readonly kept: readonly Kept[];
  readonly dropped: readonly Dropped[];
  readonly perClass: Record<string, ClassCounts>;
}

/** The images a rule passes, best first, or the reason none passes. */
function ranked(images: readonly ImageScore[], selection: SelectionSettings, threshold: number): number[] | string {
  if (selection.rule === 'paper') {
    const order = rank(
      images.map((i) => ({ checklist: i.checklist, confidence: i.detection })),
      threshold,
    );
    return order.length > 0 ? order : `class not detected at ${threshold} in any of ${images.length} images`;
  }
  const order = images
    .map((image, i) => ({ image, i }))
    .filter(({ image }) => image.combined >= selection.minCombined)
    .sort((x, y) => y.image.combined - x.image.combined || x.i - y.i)
    .map(({ i }) => i);
  return order.length > 0 ? order : `no image reached combined score ${selection.minCombined}`;
}

/**
 * Indices of the images a prompt keeps, best first (at most `selection.perPrompt`), or the reason
 * it keeps none. With `selection.requireCount`, an image whose detector instance count differs
 * from the prompt's stated count is passed over (the judge's `countMatches` is false; it is null
 * when the prompt states no count, and such images stay).
 */
export function chooseImages(images: readonly ImageScore[], selection: SelectionSettings, threshold: number): number[] | string {
  if (images.length === 0) return 'no images';
  const order = ranked(images, selection, threshold);
  if (typeof order === 'string') return order;
  // Inputs stored by earlier versions lack the option: it reads as off.
  const counted = selection.requireCount === true ? order.filter((i) => images[i]!.countMatches !== false) : order;
  if (counted.length === 0) return 'detector count differs from the stated count in every image that passes the rule';
  return counted.slice(0, selection.perPrompt);
}

/** The kept images in prompt order, best first within a prompt; per class, images kept and prompts dropped with reasons. */
export function curate(records: readonly PromptScores[], selection: SelectionSettings, threshold: number): Curation {
  const kept: Kept[] = [];
  const dropped: Dropped[] = [];
  const perClass: Record<string, { kept: number; dropped: number; reasons: Record<string, number> }> = {};
  for (const prompt of [...records].sort((a, b) => a.promptIndex - b.promptIndex)) {
    const counts = (perClass[prompt.className] ??= { kept: 0, dropped: 0, reasons: {} });
    const choice = chooseImages(prompt.images, selection, threshold);
    if (typeof choice !== 'string') {
      for (const i of choice) kept.push({ prompt, image: prompt.images[i]!, sampleIndex: i });
      counts.kept += choice.length;
    } else {
      dropped.push({ prompt, reason: choice });
      counts.dropped += 1;
      counts.reasons[choice] = (counts.reasons[choice] ?? 0) + 1;
    }
  }
  return { kept, dropped, perClass };
}

/** A metadata.jsonl row: the caption is the prompt of the very image it sits beside. */
export function metadataRow(fileName: string, kept: Kept): Record<string, unknown> {
  const { prompt, image } = kept;
  return {
    file_name: fileName,
    text: prompt.text,
    class: prompt.className,
    prompt_index: prompt.promptIndex,
    seed: image.seed,
    source: image.key,
    detection: image.detection,
    instances: image.instances,
    checklist: image.checklist,
    caption: image.caption,
    clip: image.clip,
    combined: image.combined,
  };
}
