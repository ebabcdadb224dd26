/** A box in pixel corners of the judged image. */
export interface Box {
  readonly xmin: number;
  readonly ymin: number;
  readonly xmax: number;
  readonly ymax: number;
}

/** One detector proposal for the queried class. */
export interface Candidate {
  readonly score: number;
  readonly box: Box;
}

function area(b: Box): number {
  return Math.max(0, b.xmax - b.xmin) * Math.max(0, b.ymax - b.ymin);
}

export function iou(a: Box, b: Box): number {
  const inter = area({
    xmin: Math.max(a.xmin, b.xmin),
    ymin: Math.max(a.ymin, b.ymin),
    xmax: Math.min(a.xmax, b.xmax),
    ymax: Math.min(a.ymax, b.ymax),
  });
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Instances of the class: candidates at or above `threshold`, greedily deduplicated by IoU
 * (highest score first), because detectors such as OWL-ViT propose one box per patch and
 * neighbouring patches see the same object.
 */
export function instances(candidates: readonly Candidate[], threshold: number, iouThreshold: number): Candidate[] {
  const kept: Candidate[] = [];
  const ranked = candidates.filter((c) => c.score >= threshold).sort((a, b) => b.score - a.score);
  for (const c of ranked) {
    if (kept.every((k) => iou(k.box, c.box) <= iouThreshold)) kept.push(c);
  }
  return kept;
}
