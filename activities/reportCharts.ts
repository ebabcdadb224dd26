/** The report's small charts as inline SVG: no script or image file, so they show wherever the page opens. Pure. */
import { escapeHtml } from './html.js';

/** A histogram of values in [0, 1] as inline SVG, ten bins. */
export function histogramSvg(values: readonly number[], label: string): string {
  const bins = new Array<number>(10).fill(0);
  for (const v of values) bins[Math.min(9, Math.max(0, Math.floor(v * 10)))]! += 1;
  const top = Math.max(1, ...bins);
  const bars = bins
    .map(
      (n, i) =>
        `<rect x="${i * 22}" y="${100 - (90 * n) / top}" width="20" height="${(90 * n) / top}"><title>${(i / 10).toFixed(1)}-${((i + 1) / 10).toFixed(1)}: ${n}</title></rect>`,
    )
    .join('');
  return `<figure><svg viewBox="0 0 220 100" width="220" height="100" role="img" aria-label="${escapeHtml(label)}">${bars}</svg><figcaption>${escapeHtml(label)} (0 to 1, ${values.length} images)</figcaption></figure>`;
}

/** Points drawn at most: a longer run is averaged over consecutive steps, which keeps the page small and the trend readable. */
export const LOSS_CURVE_POINTS = 200;

const round = (x: number) => Math.round(x * 10) / 10;

/** The per-step training loss (`losses[i]` is step i + 1's) as an inline SVG line, lowest to highest loss bottom to top. */
export function lossCurveSvg(losses: readonly number[]): string {
  const per = Math.max(1, Math.ceil(losses.length / LOSS_CURVE_POINTS));
  const points: { step: number; loss: number }[] = [];
  for (let start = 0; start < losses.length; start += per) {
    const bucket = losses.slice(start, start + per);
    points.push({ step: start + (bucket.length + 1) / 2, loss: bucket.reduce((s, x) => s + x, 0) / bucket.length });
  }
  const low = Math.min(...points.map((p) => p.loss));
  const high = Math.max(...points.map((p) => p.loss));
  const span = high > low ? high - low : 1;
  const [left, right, top, bottom] = [50, 430, 10, 110];
  const x = (step: number) => (losses.length > 1 ? left + ((right - left) * (step - 1)) / (losses.length - 1) : (left + right) / 2);
  const y = (loss: number) => (high > low ? bottom - ((bottom - top) * (loss - low)) / span : (top + bottom) / 2);
  const line = points.map((p) => `${round(x(p.step))},${round(y(p.loss))}`).join(' ');
  const label = 'training loss per step';
  const averaged = per > 1 ? `, each point the mean of ${per} steps` : '';
  const last = losses[losses.length - 1] ?? 0;
  return (
    `<figure><svg viewBox="0 0 440 130" width="440" height="130" role="img" aria-label="${label}">` +
    `<polyline points="${line}" fill="none" stroke="#4a7" stroke-width="1.5"/>` +
    `<text x="${left - 4}" y="${top + 4}" text-anchor="end" font-size="10">${high.toPrecision(3)}</text>` +
    `<text x="${left - 4}" y="${bottom}" text-anchor="end" font-size="10">${low.toPrecision(3)}</text>` +
    `<text x="${left}" y="${bottom + 15}" font-size="10">step 1</text>` +
    `<text x="${right}" y="${bottom + 15}" text-anchor="end" font-size="10">step ${losses.length}</text>` +
    `</svg><figcaption>${label} (${losses.length} steps${averaged}; first ${losses[0]?.toPrecision(3) ?? '–'}, last ${last.toPrecision(3)}, lowest drawn ${low.toPrecision(3)})</figcaption></figure>`
  );
}
