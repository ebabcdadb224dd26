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

/** Indices of the images a prompt keeps, best first (at most `selection.perPrompt`), or the reason it keeps none. */
export function chooseImages(images: readonly ImageScore[], selection: SelectionSettings, threshold: number): number[] | string {
  if (images.length === 0) return 'no images';
  if (selection.rule === 'paper') {
    const ranked = rank(
      images.map((i) => ({ checklist: i.checklist, confidence: i.detection })),
      threshold,
    );
    return ranked.length > 0 ? ranked.slice(0, selection.perPrompt) : `class not detected at ${threshold} in any of ${images.length} images`;
  }
  const ranked = images
    .map((image, i) => ({ image, i }))
    .filter(({ image }) => image.combined >= selection.minCombined)
    .sort((x, y) => y.image.combined - x.image.combined || x.i - y.i)
    .map(({ i }) => i);
  return ranked.length > 0 ? ranked.slice(0, selection.perPrompt) : `no image reached combined score ${selection.minCombined}`;
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
