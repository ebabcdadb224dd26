/**
 * A dashboard's panels drawn as one HTML page of SVG charts, laid out on Grafana's grid (24
 * columns; rows 30 px high with 8 px between them) in the colours of Grafana's dark theme, for a
 * screenshot: time series as lines (gaps where a query had no value), stat panels as their last
 * value over a faint sparkline, threshold lines where a panel draws them, "No data" where no
 * query returned anything. Not interactive; no tooltips.
 */
import type { Dashboard, Panel } from './dashboard.js';

/** One legend entry of a panel: its values at the page's times (null: no value then). */
export interface DrawnSeries {
  readonly name: string;
  readonly values: readonly (number | null)[];
}

export interface DrawnPanel {
  readonly panel: Panel;
  readonly series: readonly DrawnSeries[];
}

export interface Page {
  readonly dashboard: Dashboard;
  /** Milliseconds since the epoch, ascending: where every series has its values. */
  readonly times: readonly number[];
  readonly panels: readonly DrawnPanel[];
  /** A line under the title: what the page shows and how it was made. */
  readonly caption: string;
  readonly width: number;
}

const COLUMNS = 24;
const ROW = 30;
const GAP = 8;
const MARGIN = 16;
const HEADER = 64;
const PALETTE = ['#73BF69', '#F2CC0C', '#8AB8FF', '#FF780A', '#F2495C', '#5794F2', '#B877D9', '#FADE2A', '#37872D', '#C4162A'];
const THEME = { page: '#111217', panel: '#181b1f', border: '#2a2d33', text: '#ccccdc', weak: '#8e8e9e', grid: '#2a2d33' };

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Up to three significant figures, trailing zeros dropped. */
function figures(value: number, decimals: number | null): string {
  if (decimals !== null) return value.toFixed(decimals);
  if (value === 0) return '0';
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(value))));
  return String(Number(value.toFixed(Math.min(digits, 6))));
}

const SCALES: Readonly<Record<string, readonly (readonly [number, string])[]>> = {
  short: [
    [1e9, ' Bil'],
    [1e6, ' M'],
    [1e3, ' K'],
    [1, ''],
  ],
  Bps: [
    [1e9, ' GB/s'],
    [1e6, ' MB/s'],
    [1e3, ' kB/s'],
    [1, ' B/s'],
  ],
  s: [
    [86_400, ' day'],
    [3600, ' hour'],
    [60, ' min'],
    [1, ' s'],
    [1e-3, ' ms'],
    [1e-6, ' µs'],
  ],
};

/** A value in a panel's unit, as Grafana writes these units. */
function formatValue(value: number, unit: string, decimals: number | null = null): string {
  if (unit === 'percentunit') return `${figures(value * 100, decimals)}%`;
  const scale = SCALES[unit];
  if (scale === undefined || value === 0) return figures(value, decimals);
  const [factor, suffix] = scale.find(([f]) => Math.abs(value) >= f) ?? scale[scale.length - 1]!;
  return `${figures(value / factor, decimals)}${suffix}`;
}

/** Steps of a seconds axis from half a minute up: whole minutes and hours. */
const TIME_STEPS = [30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400];

/**
 * Round tick values covering [low, high], at least `smallest` apart: steps of 1, 2 or 5 times a
 * power of ten, or of whole minutes and hours on a seconds axis.
 */
function ticks(low: number, high: number, unit: string, smallest: number, count = 4): number[] {
  if (high <= low) return [low];
  const raw = Math.max(smallest, (high - low) / count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const timeStep = unit === 's' ? TIME_STEPS.find((s) => s >= raw) : undefined;
  const step = raw >= TIME_STEPS[0]! && timeStep !== undefined ? timeStep : ([1, 2, 5, 10].find((m) => m * power >= raw) ?? 10) * power;
  const found: number[] = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) found.push(Number(v.toPrecision(12)));
  return found;
}

function clock(time: number): string {
  return new Date(time).toISOString().slice(11, 19);
}

function finite(values: readonly (number | null)[]): number[] {
  return values.filter((v): v is number => v !== null && Number.isFinite(v));
}

function timeSeriesSvg(page: Page, drawn: DrawnPanel, width: number, height: number): string {
  const { panel, series } = drawn;
  const values = series.flatMap((s) => finite(s.values));
  if (values.length === 0) return `<div class="nodata" style="height:${height}px">No data</div>`;
  const lines = panel.thresholdLines ? panel.thresholds.flatMap((t) => (t.value === null ? [] : [t])) : [];
  let low = panel.min ?? Math.min(0, ...values);
  let high = panel.max ?? Math.max(...values, ...lines.map((t) => t.value!));
  if (high === low) high = low + 1;
  // A panel showing whole numbers gets whole ticks.
  const yTicks = ticks(low, high, panel.unit, panel.decimals === null ? 0 : 10 ** -panel.decimals);
  low = Math.min(low, yTicks[0]!);
  high = Math.max(high, yTicks[yTicks.length - 1]!);
  const left = 64;
  const bottom = 20;
  const plotW = width - left - 8;
  const plotH = height - bottom - 6;
  const first = page.times[0]!;
  const span = Math.max(1, page.times[page.times.length - 1]! - first);
  const x = (t: number) => left + ((t - first) / span) * plotW;
  const y = (v: number) => 6 + plotH - ((v - low) / (high - low)) * plotH;
  const parts: string[] = [];
  for (const v of yTicks) {
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="${THEME.grid}"/>`);
    parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${escape(formatValue(v, panel.unit, panel.decimals))}</text>`);
  }
  const timeTicks = 6;
  for (let i = 0; i <= timeTicks; i++) {
    const t = first + (span * i) / timeTicks;
    parts.push(`<text x="${x(t)}" y="${height - 4}" text-anchor="middle">${clock(t)}</text>`);
  }
  if (panel.axisLabel !== '') {
    parts.push(`<text transform="translate(12 ${6 + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(panel.axisLabel)}</text>`);
  }
  for (const t of lines) {
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(t.value!)}" y2="${y(t.value!)}" stroke="${t.color}" stroke-dasharray="6 4"/>`);
  }
  series.forEach((s, index) => {
    const color = PALETTE[index % PALETTE.length]!;
    // Runs of consecutive values: a gap where a query had none.
    const runs: [number, number][][] = [[]];
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        if (runs[runs.length - 1]!.length > 0) runs.push([]);
      } else runs[runs.length - 1]!.push([x(page.times[i]!), y(Math.min(high, Math.max(low, v)))]);
    });
    for (const run of runs.filter((r) => r.length > 0)) {
      const points = run.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' ');
      if (run.length === 1) {
        parts.push(`<circle cx="${run[0]![0]}" cy="${run[0]![1]}" r="2" fill="${color}"/>`);
        continue;
      }
      if (panel.fillOpacity > 0) {
        const base = y(Math.max(low, 0));
        parts.push(
          `<polygon points="${run[0]![0].toFixed(1)},${base} ${points} ${run[run.length - 1]![0].toFixed(1)},${base}" fill="${color}" fill-opacity="${panel.fillOpacity / 100}"/>`,
        );
      }
      parts.push(`<polyline points="${points}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    }
  });
  return `<svg width="${width}" height="${height}">${parts.join('')}</svg>`;
}

function statHtml(drawn: DrawnPanel, width: number, height: number): string {
  const { panel, series } = drawn;
  const values = series[0]?.values ?? [];
  const known = values.map((v, i) => [i, v] as const).filter((p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[1]));
  const last = known.at(-1)?.[1];
  if (last === undefined) return `<div class="nodata" style="height:${height}px">No data</div>`;
  const color = panel.thresholds.filter((t) => t.value === null || last >= t.value).at(-1)?.color ?? PALETTE[0]!;
  const top = Math.max(...known.map(([, v]) => v));
  const bottom = Math.min(0, ...known.map(([, v]) => v));
  const px = (i: number) => (i / Math.max(1, values.length - 1)) * width;
  const py = (v: number) => height - ((v - bottom) / Math.max(1e-12, top - bottom)) * height * 0.5;
  const area = `0,${height} ${known.map(([i, v]) => `${px(i).toFixed(1)},${py(v).toFixed(1)}`).join(' ')} ${px(known.at(-1)![0]).toFixed(1)},${height}`;
  return (
    `<svg width="${width}" height="${height}"><polygon points="${area}" fill="${color}" fill-opacity="0.15"/>` +
    `<text x="${width / 2}" y="${height / 2 + 14}" text-anchor="middle" class="stat" style="fill:${color}">${escape(formatValue(last, panel.unit, panel.decimals))}</text></svg>`
  );
}

function legend(drawn: DrawnPanel): string {
  if (drawn.panel.type === 'stat' || drawn.series.length === 0) return '';
  const entries = drawn.series.map((s, i) => `<span><i style="background:${PALETTE[i % PALETTE.length]}"></i>${escape(s.name)}</span>`);
  return `<div class="legend">${entries.join('')}</div>`;
}

/** The whole page: a header with the dashboard's title and the caption, then every panel at its grid place. */
export function dashboardPage(page: Page): string {
  const column = (page.width - 2 * MARGIN + GAP) / COLUMNS;
  const legendHeight = 22;
  const panels = page.panels.map((drawn) => {
    const { x, y, w, h } = drawn.panel.gridPos;
    const width = w * column - GAP;
    const height = h * ROW + (h - 1) * GAP;
    const inner = height - 34 - (drawn.panel.type === 'stat' ? 0 : legendHeight);
    const body = drawn.panel.type === 'stat' ? statHtml(drawn, width - 16, inner) : timeSeriesSvg(page, drawn, width - 16, inner);
    return (
      `<section style="left:${MARGIN + x * column}px;top:${HEADER + y * (ROW + GAP)}px;width:${width}px;height:${height}px">` +
      `<h2>${escape(drawn.panel.title)}</h2>${body}${legend(drawn)}</section>`
    );
  });
  const bottom = Math.max(...page.panels.map((d) => (d.panel.gridPos.y + d.panel.gridPos.h) * (ROW + GAP)));
  return `<!doctype html><html><head><meta charset="utf-8"><style>
body { margin: 0; background: ${THEME.page}; color: ${THEME.text}; font: 12px Inter, "DejaVu Sans", Arial, sans-serif; }
main { position: relative; width: ${page.width}px; height: ${HEADER + bottom + MARGIN}px; }
header { position: absolute; left: ${MARGIN}px; top: 10px; }
header h1 { margin: 0; font-size: 18px; font-weight: 500; }
header p { margin: 4px 0 0; color: ${THEME.weak}; }
section { position: absolute; box-sizing: border-box; background: ${THEME.panel}; border: 1px solid ${THEME.border}; border-radius: 2px; padding: 0 8px; overflow: hidden; }
h2 { margin: 0; height: 32px; line-height: 32px; font-size: 13px; font-weight: 500; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
svg { display: block; }
svg text { fill: ${THEME.weak}; font-size: 11px; }
svg text.stat { font-size: 34px; font-weight: 500; }
.nodata { display: flex; align-items: center; justify-content: center; color: ${THEME.weak}; }
.legend { height: 22px; line-height: 22px; white-space: nowrap; overflow: hidden; color: ${THEME.text}; }
.legend span { margin-right: 14px; }
.legend i { display: inline-block; width: 14px; height: 4px; margin-right: 5px; vertical-align: middle; border-radius: 2px; }
</style></head><body><main><header><h1>${escape(page.dashboard.title)}</h1><p>${escape(page.caption)}</p></header>${panels.join('')}</main></body></html>`;
}
