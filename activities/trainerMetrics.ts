/** What the report reads of the trainer's `metrics.json` (written by python/loratrain/metrics.py). Pure. */

/** The per-step training losses, or why the report cannot show them. */
export type LossCurve = { readonly losses: readonly number[] } | { readonly unavailable: string };

/** The loss curve of a `metrics.json`'s text; `null` when the LoRA folder has none. */
export function lossCurve(metrics: string | null): LossCurve {
  if (metrics === null) return { unavailable: "the LoRA folder has no metrics.json, so the trainer's per-step losses are not known" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(metrics);
  } catch {
    // Python writes a non-finite loss as a bare NaN or Infinity, which is not JSON.
    return { unavailable: 'metrics.json is not valid JSON (a loss that was not a finite number makes it so)' };
  }
  const curve = (parsed as { loss_curve?: unknown } | null)?.loss_curve;
  if (!Array.isArray(curve) || curve.length === 0 || !curve.every((x) => typeof x === 'number' && Number.isFinite(x)))
    return { unavailable: 'metrics.json holds no per-step losses (a trainer older than its loss_curve field, or a run of no steps)' };
  return { losses: curve as number[] };
}

/**
 * The trainer's final loss in a `metrics.json`'s text (its `final_loss`: the mean of the last
 * epoch's steps, steadier than the last step's); null when there is no file, no such number, or
 * the text is not JSON.
 */
export function finalLoss(metrics: string | null): number | null {
  if (metrics === null) return null;
  try {
    const value = (JSON.parse(metrics) as { final_loss?: unknown } | null)?.final_loss;
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}
