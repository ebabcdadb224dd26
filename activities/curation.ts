/** The selection rule over judged prompts, as a pure function of the score records. */
import type { SelectionSettings } from '../config/round.js';
import { select } from '../models/judge/index.js';
import type { ClassCounts, ImageScore, PromptScores } from './types.js';

export interface Kept {
  readonly prompt: PromptScores;
  readonly image: ImageScore;
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

/** Index of the image a prompt keeps, or the reason it keeps none. */
export function chooseImage(images: readonly ImageScore[], selection: SelectionSettings, threshold: number): number | string {
  if (images.length === 0) return 'no images';
  if (selection.rule === 'paper') {
    const best = select(images.map((i) => ({ checklist: i.checklist, confidence: i.detection })), threshold);
    return best ?? `class not detected at ${threshold} in any of ${images.length} images`;
  }
  let best: number | null = null;
  images.forEach((image, i) => {
    if (image.combined >= selection.minCombined && (best === null || image.combined > images[best]!.combined)) best = i;
  });
  return best ?? `no image reached combined score ${selection.minCombined}`;
}

/** One image (or none) per prompt, in prompt order, with per-class counts and drop reasons. */
export function curate(records: readonly PromptScores[], selection: SelectionSettings, threshold: number): Curation {
  const kept: Kept[] = [];
  const dropped: Dropped[] = [];
  const perClass: Record<string, { kept: number; dropped: number; reasons: Record<string, number> }> = {};
  for (const prompt of [...records].sort((a, b) => a.promptIndex - b.promptIndex)) {
    const counts = (perClass[prompt.className] ??= { kept: 0, dropped: 0, reasons: {} });
    const choice = chooseImage(prompt.images, selection, threshold);
    if (typeof choice === 'number') {
      kept.push({ prompt, image: prompt.images[choice]! });
      counts.kept += 1;
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
