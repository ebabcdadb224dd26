/**
 * The deployment's Grafana dashboard (deploy/grafana/dashboards/selfreward.json), read into the
 * parts the snapshot draws and the deployment test checks: each panel's kind, title, place on
 * Grafana's 24-column grid, data source, queries and display settings. A field of the wrong type
 * fails the read, naming the panel.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { PACKAGE_ROOT } from '../config/paths.js';

export const DASHBOARD_FILE = join(PACKAGE_ROOT, 'deploy', 'grafana', 'dashboards', 'selfreward.json');

export interface Target {
  readonly refId: string;
  readonly expr: string;
  readonly legendFormat: string;
  /** The target's own data source uid; null: the panel's. */
  readonly datasourceUid: string | null;
}

export interface ThresholdStep {
  readonly color: string;
  /** Null for the base step, which starts at minus infinity. */
  readonly value: number | null;
}

export interface Panel {
  readonly id: number;
  readonly type: 'timeseries' | 'stat';
  readonly title: string;
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly datasourceUid: string;
  readonly targets: readonly Target[];
  readonly unit: string;
  readonly min: number | null;
  readonly max: number | null;
  readonly decimals: number | null;
  readonly axisLabel: string;
  /** Percent, 0 to 100, of the area under each line. */
  readonly fillOpacity: number;
  readonly thresholds: readonly ThresholdStep[];
  /** Whether a time series panel draws its thresholds as lines. */
  readonly thresholdLines: boolean;
}

export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: readonly Panel[];
}

type Fields = Readonly<Record<string, unknown>>;

function object(value: unknown, where: string): Fields {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Fields;
  throw new Error(`${where}: expected an object`);
}

function text(value: unknown, where: string): string {
  if (typeof value === 'string') return value;
  throw new Error(`${where}: expected a string`);
}

function number(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  throw new Error(`${where}: expected a number`);
}

function optionalNumber(value: unknown, where: string): number | null {
  return value === undefined || value === null ? null : number(value, where);
}

function list(value: unknown, where: string): readonly unknown[] {
  if (Array.isArray(value)) return value;
  throw new Error(`${where}: expected a list`);
}

function panel(value: unknown, index: number): Panel {
  const fields = object(value, `panels[${index}]`);
  const title = text(fields['title'], `panels[${index}].title`);
  const where = `panel "${title}"`;
  const type = text(fields['type'], `${where}.type`);
  if (type !== 'timeseries' && type !== 'stat') throw new Error(`${where}: type ${type} is neither timeseries nor stat`);
  const grid = object(fields['gridPos'], `${where}.gridPos`);
  const defaults = object(object(fields['fieldConfig'], `${where}.fieldConfig`)['defaults'], `${where}.fieldConfig.defaults`);
  const custom = object(defaults['custom'] ?? {}, `${where} custom`);
  const thresholds = object(defaults['thresholds'] ?? { steps: [] }, `${where} thresholds`);
  return {
    id: number(fields['id'], `${where}.id`),
    type,
    title,
    gridPos: {
      x: number(grid['x'], `${where}.gridPos.x`),
      y: number(grid['y'], `${where}.gridPos.y`),
      w: number(grid['w'], `${where}.gridPos.w`),
      h: number(grid['h'], `${where}.gridPos.h`),
    },
    datasourceUid: text(object(fields['datasource'], `${where}.datasource`)['uid'], `${where}.datasource.uid`),
    targets: list(fields['targets'], `${where}.targets`).map((t, i) => {
      const target = object(t, `${where}.targets[${i}]`);
      const datasource = target['datasource'] === undefined ? null : object(target['datasource'], `${where}.targets[${i}].datasource`);
      return {
        refId: text(target['refId'], `${where}.targets[${i}].refId`),
        expr: text(target['expr'], `${where}.targets[${i}].expr`),
        legendFormat: text(target['legendFormat'] ?? '', `${where}.targets[${i}].legendFormat`),
        datasourceUid: datasource === null ? null : text(datasource['uid'], `${where}.targets[${i}].datasource.uid`),
      };
    }),
    unit: text(defaults['unit'] ?? 'short', `${where} unit`),
    min: optionalNumber(defaults['min'], `${where} min`),
    max: optionalNumber(defaults['max'], `${where} max`),
    decimals: optionalNumber(defaults['decimals'], `${where} decimals`),
    axisLabel: text(custom['axisLabel'] ?? '', `${where} axisLabel`),
    fillOpacity: number(custom['fillOpacity'] ?? 0, `${where} fillOpacity`),
    thresholds: list(thresholds['steps'], `${where} thresholds.steps`).map((s, i) => {
      const step = object(s, `${where} thresholds.steps[${i}]`);
      return { color: text(step['color'], `${where} threshold color`), value: optionalNumber(step['value'], `${where} threshold value`) };
    }),
    thresholdLines: object(custom['thresholdsStyle'] ?? {}, `${where} thresholdsStyle`)['mode'] === 'line',
  };
}

export function readDashboard(file = DASHBOARD_FILE): Dashboard {
  const fields = object(JSON.parse(readFileSync(file, 'utf8')), file);
  return {
    uid: text(fields['uid'], `${file}: uid`),
    title: text(fields['title'], `${file}: title`),
    panels: list(fields['panels'], `${file}: panels`).map(panel),
  };
}
