/**
 * The deployment's monitoring (Prometheus, its alert rules, Grafana's provisioning and dashboard
 * in docker-compose.yml and deploy/) read against the code: Prometheus scrapes exactly the
 * compose file's workers, on the port they serve metrics on, and nothing publishes that port;
 * every metric the dashboard and the alert rules query is one the workers export, and every
 * label they filter or group by is one that metric carries (with values the code produces);
 * Grafana's data source is the compose file's Prometheus, and every panel uses it; the
 * provisioning compose mounts is where Grafana looks; every panel's queries are in the forms the
 * snapshot renderer (scripts/promql.ts) evaluates. Needs no Docker engine.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { parse as parseYaml } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';

import { FAILURE_TYPES } from '../contract/failures.js';
import type { LineEvent } from '../contract/lines.js';
import { TASK_QUEUES, WORKER_QUEUE_PATTERN, workerQueueName } from '../contract/workers.js';
import { METRICS, SDK_METRICS } from '../observability/metrics.js';
import * as workflows from '../workflows/index.js';
import { readDashboard, type Dashboard } from '../scripts/dashboard.js';
import { parse, selectors, supportedForm, windowSeconds, type Matcher } from '../scripts/promql.js';
import { REPO_ROOT } from './servers.js';

type Fields = Readonly<Record<string, unknown>>;

function fields(value: unknown, where: string): Fields {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Fields;
  throw new Error(`${where}: expected a mapping, got ${JSON.stringify(value)}`);
}

function strings(value: unknown, where: string): string[] {
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  throw new Error(`${where}: expected a list of strings, got ${JSON.stringify(value)}`);
}

function list(value: unknown, where: string): Fields[] {
  if (Array.isArray(value)) return value.map((v, i) => fields(v, `${where}[${i}]`));
  throw new Error(`${where}: expected a list, got ${JSON.stringify(value)}`);
}

const yamlFile = (...path: string[]): Fields => fields(parseYaml(readFileSync(join(REPO_ROOT, ...path), 'utf8'), { merge: true }), path.join('/'));

/** Labels Prometheus gives every series of a target. */
const TARGET_LABELS = ['instance', 'job'];
/** Labels every metric of a worker carries (observability/runtime.ts's global tags). */
const WORKER_LABELS = ['role', 'device'];
/**
 * The SDK's metrics the deployment may query, with their labels, as a worker of SDK 1.24 exports
 * them (read off a worker's /metrics during a round). Histograms are scraped as `_bucket` (with
 * `le`), `_sum` and `_count`.
 */
const SDK_LABELS: Readonly<Record<string, { readonly histogram: boolean; readonly labels: readonly string[] }>> = {
  temporal_workflow_endtoend_latency: { histogram: true, labels: ['namespace', 'service_name', 'task_queue', 'workflow_type'] },
  temporal_workflow_completed_total: { histogram: false, labels: ['namespace', 'service_name', 'task_queue', 'workflow_type'] },
  temporal_activity_execution_latency: { histogram: true, labels: ['namespace', 'service_name', 'task_queue', 'workflow_type', 'activity_type'] },
  temporal_activity_schedule_to_start_latency: { histogram: true, labels: ['namespace', 'service_name', 'task_queue'] },
  temporal_worker_task_slots_available: { histogram: false, labels: ['namespace', 'service_name', 'task_queue', 'worker_type'] },
  temporal_worker_task_slots_used: { histogram: false, labels: ['namespace', 'service_name', 'task_queue', 'worker_type'] },
};
const VERDICTS: readonly Exclude<LineEvent['verdict'], 'applied'>[] = ['promoted', 'rejected'];

/** Every series name a query may select, with the labels it carries. */
function exportedSeries(): Map<string, readonly string[]> {
  const series = new Map<string, readonly string[]>();
  const add = (name: string, histogram: boolean, labels: readonly string[]) => {
    const all = [...labels, ...WORKER_LABELS, ...TARGET_LABELS];
    if (!histogram) return void series.set(name, all);
    series.set(`${name}_bucket`, [...all, 'le']);
    series.set(`${name}_sum`, all);
    series.set(`${name}_count`, all);
  };
  for (const spec of Object.values(METRICS)) add(spec.name, spec.instrument === 'histogram', spec.labels);
  for (const [name, sdk] of Object.entries(SDK_LABELS)) add(name, sdk.histogram, sdk.labels);
  // Prometheus's own, one per target and scrape.
  series.set('up', TARGET_LABELS);
  return series;
}

interface Service {
  readonly name: string;
  readonly spec: Fields;
  readonly environment: Readonly<Record<string, string>>;
  /** Bind mounts: host path -> container path. */
  readonly binds: ReadonlyMap<string, string>;
  /** `host:container` of each published port, the bind address dropped. */
  readonly ports: readonly string[];
}

let services: Map<string, Service>;
let workers: Service[];
let prometheus: Fields;
let scrapeJob: Fields;
let alerts: { readonly name: string; readonly expr: string; readonly rule: Fields }[];
let datasource: Fields;
let dashboard: Dashboard;

function only(name: string): Service {
  const found = services.get(name);
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

beforeAll(() => {
  const compose = yamlFile('docker-compose.yml');
  services = new Map(
    Object.entries(fields(compose['services'], 'services')).map(([name, value]) => {
      const spec = fields(value, name);
      const environment = Object.fromEntries(Object.entries(fields(spec['environment'] ?? {}, `${name}.environment`)).map(([k, v]) => [k, String(v)]));
      const binds = new Map<string, string>();
      for (const volume of strings(spec['volumes'] ?? [], `${name}.volumes`)) {
        const [source = '', target = ''] = volume.split(':');
        if (source.startsWith('./')) binds.set(source, target);
      }
      const ports = strings(spec['ports'] ?? [], `${name}.ports`).map((p) => p.replace(/^\$\{BIND_ADDRESS:-[^}]*\}:/, ''));
      return [name, { name, spec, environment, binds, ports }];
    }),
  );
  workers = [...services.values()].filter((s) => strings(s.spec['command'] ?? [], `${s.name}.command`).some((part) => part.startsWith('dist/workers/')));
  prometheus = yamlFile('deploy', 'prometheus', 'prometheus.yml');
  const jobs = list(prometheus['scrape_configs'], 'scrape_configs');
  expect(jobs, 'one scrape job: the workers').toHaveLength(1);
  scrapeJob = jobs[0]!;
  const groups = list(yamlFile('deploy', 'prometheus', 'alerts.yml')['groups'], 'groups');
  alerts = groups.flatMap((g) =>
    list(g['rules'], `group ${String(g['name'])}`).map((rule) => ({ name: String(rule['alert']), expr: String(rule['expr']), rule })),
  );
  const datasources = list(yamlFile('deploy', 'grafana', 'provisioning', 'datasources', 'prometheus.yml')['datasources'], 'datasources');
  expect(datasources).toHaveLength(1);
  datasource = datasources[0]!;
  dashboard = readDashboard();
});

describe('Prometheus in docker-compose.yml', () => {
  it('scrapes exactly the worker services, on the port of their SELF_REWARD_METRICS_ADDRESS', () => {
    expect(workers.map((w) => w.name).sort()).toEqual(['worker-cpu', 'worker-gpu-0', 'worker-gpu-1']);
    const expected = workers.map((w) => {
      const address = w.environment['SELF_REWARD_METRICS_ADDRESS'] ?? '';
      expect(address, `${w.name} serves metrics on every interface of its container`).toMatch(/^0\.0\.0\.0:\d+$/);
      return `${w.name}:${address.split(':')[1]}`;
    });
    const targets = list(scrapeJob['static_configs'], 'static_configs').flatMap((c) => strings(c['targets'], 'targets'));
    expect([...targets].sort()).toEqual([...expected].sort());
    expect(scrapeJob['metrics_path'] ?? '/metrics').toBe('/metrics');
  });

  it('names each instance after its service, as the dashboard legends show it', () => {
    const relabels = list(scrapeJob['relabel_configs'], 'relabel_configs');
    expect(relabels).toHaveLength(1);
    const relabel = relabels[0]!;
    expect(strings(relabel['source_labels'], 'source_labels')).toEqual(['__address__']);
    expect(relabel['target_label']).toBe('instance');
    // Prometheus anchors the regex and writes its first group by default.
    const regex = new RegExp(`^(?:${String(relabel['regex'])})$`);
    for (const w of workers) expect(`${w.name}:9464`.replace(regex, String(relabel['replacement'] ?? '$1'))).toBe(w.name);
  });

  it('publishes no worker port: Prometheus reaches the workers over the compose network', () => {
    for (const w of workers) expect(w.spec['ports'], w.name).toBeUndefined();
    const metricsPorts = new Set(workers.map((w) => (w.environment['SELF_REWARD_METRICS_ADDRESS'] ?? '').split(':')[1]));
    for (const s of services.values()) for (const port of s.ports) expect(metricsPorts.has(port.split(':')[1]), `${s.name} publishes ${port}`).toBe(false);
    for (const s of services.values()) expect(s.spec['network_mode'], s.name).toBeUndefined();
  });

  it('runs with the mounted configuration, loads the alert rules from it and keeps its data in a volume', () => {
    const service = only('prometheus');
    const folder = service.binds.get('./deploy/prometheus');
    expect(folder).toBe('/etc/prometheus');
    const command = strings(service.spec['command'], 'prometheus.command');
    expect(command).toContain(`--config.file=${folder}/prometheus.yml`);
    expect(command).toContain('--storage.tsdb.path=/prometheus');
    expect(strings(service.spec['volumes'], 'prometheus.volumes')).toContain('prometheus-data:/prometheus');
    const rules = strings(prometheus['rule_files'], 'rule_files');
    expect(rules).toEqual([`${folder}/alerts.yml`]);
    for (const rule of rules) expect(existsSync(join(REPO_ROOT, 'deploy', 'prometheus', rule.slice(`${folder}/`.length))), rule).toBe(true);
    expect(service.ports).toEqual(['9090:9090']);
  });
});

describe('Grafana in docker-compose.yml', () => {
  it('takes its admin password from .env, with no default', () => {
    const grafana = only('grafana');
    expect(grafana.environment['GF_SECURITY_ADMIN_PASSWORD']).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}$/);
    expect(readFileSync(join(REPO_ROOT, 'deploy', 'env.example'), 'utf8')).toMatch(/^GRAFANA_ADMIN_PASSWORD=$/m);
    expect(grafana.ports).toEqual(['3000:3000']);
    expect(strings(grafana.spec['volumes'], 'grafana.volumes')).toContain('grafana-data:/var/lib/grafana');
  });

  it('is provisioned from the mounted folders: the data source, and the dashboards where the provider looks', () => {
    const grafana = only('grafana');
    expect(grafana.binds.get('./deploy/grafana/provisioning')).toBe('/etc/grafana/provisioning');
    const providers = list(yamlFile('deploy', 'grafana', 'provisioning', 'dashboards', 'selfreward.yml')['providers'], 'providers');
    expect(providers).toHaveLength(1);
    expect(providers[0]!['type']).toBe('file');
    const path = String(fields(providers[0]!['options'], 'options')['path']);
    const hostFolder = [...grafana.binds].find(([, target]) => target === path)?.[0];
    expect(hostFolder, `a mount at ${path}`).toBeDefined();
    expect(existsSync(join(REPO_ROOT, hostFolder ?? '', 'selfreward.json'))).toBe(true);
  });

  it("reads the compose file's Prometheus at the interval it scrapes", () => {
    expect(datasource['type']).toBe('prometheus');
    const url = new URL(String(datasource['url']));
    expect(services.has(url.hostname), `${url.hostname} is a compose service`).toBe(true);
    expect(only(url.hostname).ports.map((p) => p.split(':')[1])).toContain(url.port);
    // $__rate_interval is four of Grafana's scrape interval: it must be Prometheus's.
    const scrapeInterval = String(fields(prometheus['global'], 'global')['scrape_interval']);
    expect(fields(datasource['jsonData'], 'jsonData')['timeInterval']).toBe(scrapeInterval);
  });

  it('draws every panel from the provisioned data source, with no two panels overlapping on the grid', () => {
    expect(dashboard.panels.length).toBeGreaterThan(10);
    const cells = new Map<string, string>();
    for (const panel of dashboard.panels) {
      expect(panel.datasourceUid, panel.title).toBe(datasource['uid']);
      for (const target of panel.targets) expect(target.datasourceUid ?? panel.datasourceUid, panel.title).toBe(datasource['uid']);
      const { x, y, w, h } = panel.gridPos;
      expect(x + w, `${panel.title} fits in 24 columns`).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.get(`${i},${j}`), `${panel.title} overlaps`).toBeUndefined();
          cells.set(`${i},${j}`, panel.title);
        }
      }
    }
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
  });

  it('queries only in the forms the snapshot renderer evaluates, so the snapshot shows every panel', () => {
    for (const panel of dashboard.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets) {
        const expr = parse(target.expr);
        expect(supportedForm(expr), `${panel.title}: ${target.expr}`).toBeNull();
        // Windows are durations or $__rate_interval, the one variable the renderer sets.
        for (const { selector } of selectors(expr)) if (selector.range !== null) windowSeconds(selector.range, { __rate_interval: 60 });
      }
    }
  });
});

describe('metrics the dashboard and the alert rules query', () => {
  const series = exportedSeries();
  const queries = () => [
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => ({ where: `panel "${p.title}"`, expr: t.expr }))),
    ...alerts.map((a) => ({ where: `alert ${a.name}`, expr: a.expr })),
  ];

  it('are SDK metrics of observability/metrics.ts', () => {
    for (const name of Object.keys(SDK_LABELS)) expect(Object.values(SDK_METRICS) as string[], name).toContain(name);
  });

  it('exist, carry every label queried, and are filtered by values the code produces', () => {
    /** Values a label takes, where the code (or the scrape job) names them. */
    const values: Readonly<Record<string, readonly string[]>> = {
      type: [...Object.keys(FAILURE_TYPES), ...failureKindsBesidesTypes()],
      verdict: VERDICTS,
      workflow_type: Object.keys(workflows),
      task_queue: [...Object.values(TASK_QUEUES), workerQueueName('a-worker')],
      worker_type: ['WorkflowWorker', 'ActivityWorker', 'LocalActivityWorker'],
      job: [String(scrapeJob['job_name'])],
    };
    for (const { where, expr } of queries()) {
      for (const { selector, groupedBy } of selectors(parse(expr))) {
        const labels = series.get(selector.name);
        expect(labels, `${where}: ${selector.name} is not a metric the workers export`).toBeDefined();
        for (const label of [...selector.matchers.map((m) => m.label), ...groupedBy]) {
          expect(labels, `${where}: ${selector.name} has no label ${label}`).toContain(label);
        }
        for (const matcher of selector.matchers) {
          const known = values[matcher.label];
          if (known !== undefined)
            for (const value of matched(matcher)) expect(known, `${where}: ${matcher.label} ${matcher.op} "${matcher.value}"`).toContain(value);
        }
      }
    }
  });

  it('include the alerts an operator needs, each saying what to look at', () => {
    const queried = new Set(alerts.flatMap((a) => selectors(parse(a.expr)).map((s) => s.selector.name)));
    for (const name of [
      'up',
      METRICS.activityFailures.name,
      METRICS.evaluationWinRate.name,
      METRICS.evaluationFlaggedClasses.name,
      METRICS.lineVerdicts.name,
      METRICS.trainerLoss.name,
    ]) {
      expect(queried, name).toContain(name);
    }
    for (const { name, rule } of alerts) {
      expect(name).toMatch(/^SelfReward[A-Z]\w+$/);
      expect(['critical', 'warning'], name).toContain(fields(rule['labels'], `${name}.labels`)['severity']);
      const annotations = fields(rule['annotations'], `${name}.annotations`);
      expect(String(annotations['summary']), name).not.toBe('');
      expect(String(annotations['description']).length, name).toBeGreaterThan(100);
    }
  });
});

/**
 * The values a matcher names: its value, or each alternative of a regex of plain alternatives.
 * The one other regex is every GPU worker's own task queue, named here by a queue it matches.
 */
function matched(matcher: Matcher): string[] {
  if (matcher.op === '=' || matcher.op === '!=') return [matcher.value];
  if (matcher.label === 'task_queue' && matcher.value === WORKER_QUEUE_PATTERN) {
    const pattern = new RegExp(`^(?:${WORKER_QUEUE_PATTERN})$`);
    expect(pattern.test(TASK_QUEUES.gpu), 'the shared GPU queue is not a worker queue').toBe(false);
    return [workerQueueName('a-worker')];
  }
  expect(matcher.value, 'a regex matcher is a list of alternatives').toMatch(/^\w+(\|\w+)*$/);
  return matcher.value.split('|');
}

/** The failure kinds the activities record besides the failure types: each `return '...'` of activities/index.ts's failureKind. */
function failureKindsBesidesTypes(): string[] {
  const source = readFileSync(join(REPO_ROOT, 'activities', 'index.ts'), 'utf8');
  const body = /function failureKind\([^)]*\)[^{]*\{([\s\S]*?)\n\}/.exec(source)?.[1] ?? '';
  const kinds = [...body.matchAll(/return '(\w+)'/g)].map((m) => m[1]!);
  expect(kinds.length, 'failureKind returns named kinds').toBeGreaterThan(0);
  return kinds;
}
