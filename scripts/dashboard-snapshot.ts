/**
 * A picture of the deployment's Grafana dashboard drawn from a real round's metrics, for the
 * README:
 *
 *   npx tsx scripts/dashboard-snapshot.ts [out.png]      (default docs/dashboard.png)
 *
 * It starts a local Temporal dev server and the workers of docker-compose.yml as processes of the
 * workers' entry points (a CPU worker and two GPU workers, on the CPU, one model thread each) with
 * SELF_REWARD_METRICS_ADDRESS set, and scrapes each one's /metrics every 5 seconds the way
 * Prometheus does (adding `job`, `instance` named after the compose service as the deployment's
 * relabelling names it, and `up`). Two small rounds run first: a worker creates a counter or
 * histogram series at its first increment, which rate() cannot count, so without them the panels
 * of rare events (round duration, training time, images kept) would stay empty, as they do in
 * Grafana for workers that just started. Then one round on the shapes pack runs through
 * SelfRewardClient (smaller than the preset's: fewer samples per prompt, training steps and
 * evaluation seeds), scraped until shortly after it ends. Every panel's queries are evaluated at
 * every scrape from just before that round with `promql.ts`, which evaluates only the forms the
 * dashboard's queries are limited to (a test checks every panel against them); the panels are
 * drawn where the dashboard places them (`dashboard-page.ts`) and the page is screenshot with
 * Debian's chromium.
 *
 * The scrape interval stands in for Prometheus's in Grafana's `$__rate_interval` (four scrape
 * intervals); windows written as durations (`[1d]`) are used as written.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { Client, Connection } from '@temporalio/client';
import { parse as parseYaml } from 'yaml';

import { loadRoundConfig } from '../cli/config.js';
import { startTemporal } from '../cli/servers.js';
import { SelfRewardClient } from '../client/index.js';
import type { RoundProgress } from '../contract/progress.js';
import { PACKAGE_ROOT } from '../config/paths.js';
import { launchChromium, requireChromium } from '../test/browser.js';
import { freePort } from '../test/servers.js';
import { WorkerProcess } from '../test/workerProcess.js';
import { readDashboard, type Panel } from './dashboard.js';
import { dashboardPage, type DrawnPanel } from './dashboard-page.js';
import { evaluate, parse, parseExposition, SeriesStore, type Labels } from './promql.js';

const SCRAPE_SECONDS = 5;
/** Grafana's $__rate_interval: four scrape intervals (at least one step plus one scrape, which is less here). */
const RATE_INTERVAL_SECONDS = 4 * SCRAPE_SECONDS;
/** The worker services of docker-compose.yml, each stood in for by a process of its role; its name is its `instance`. */
const WORKERS = [
  { service: 'worker-cpu', role: 'cpu' },
  { service: 'worker-gpu-0', role: 'gpu' },
  { service: 'worker-gpu-1', role: 'gpu' },
] as const;
/** The drawn round: about two minutes on two cores. */
const MEASURED = { samplesPerPrompt: 4, shards: 4, maxSteps: 300, seedsPerPrompt: 2 };
/** Scrapes before the round starts and after it ends: idle workers, then the round's last figures. */
const IDLE_SCRAPES = 2;
const AFTER_SCRAPES = 4;
const PAGE_WIDTH = 1600;

interface Target {
  readonly instance: string;
  readonly url: string;
}

/** The job name Prometheus gives the workers (deploy/prometheus/prometheus.yml), so that `up{job=...}` finds them. */
function workerJob(): string {
  const config = parseYaml(readFileSync(join(PACKAGE_ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as { scrape_configs?: { job_name?: unknown }[] };
  const job = config.scrape_configs?.[0]?.job_name;
  if (typeof job !== 'string') throw new Error('deploy/prometheus/prometheus.yml: no scrape job');
  return job;
}

/** One scrape of every target at one time, as Prometheus stores it: the target's labels added, and `up`. */
async function scrape(targets: readonly Target[], job: string, store: SeriesStore): Promise<number> {
  const t = Date.now();
  await Promise.all(
    targets.map(async ({ instance, url }) => {
      let text: string | null = null;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout((SCRAPE_SECONDS - 1) * 1000) });
        if (response.ok) text = await response.text();
      } catch {
        // A scrape that fails or times out is a down target, as for Prometheus.
      }
      for (const sample of text === null ? [] : parseExposition(text))
        store.add({ ...sample.labels, __name__: sample.name, instance, job }, { t, v: sample.value });
      store.add({ __name__: 'up', instance, job }, { t, v: text === null ? 0 : 1 });
    }),
  );
  return t;
}

/** Grafana's legend: `{{label}}` replaced by the label's value; no format: the label set. */
function legendName(format: string, labels: Labels): string {
  if (format !== '') return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, label: string) => labels[label] ?? '');
  const pairs = Object.entries(labels).filter(([name]) => name !== '__name__');
  return `${labels['__name__'] ?? ''}{${pairs.map(([k, v]) => `${k}="${v}"`).join(', ')}}`;
}

function drawPanel(panel: Panel, store: SeriesStore, times: readonly number[]): DrawnPanel {
  const series = panel.targets.flatMap((target) => {
    const expr = parse(target.expr);
    const values = new Map<string, (number | null)[]>();
    times.forEach((time, i) => {
      for (const point of evaluate(expr, { store, time, variables: { __rate_interval: RATE_INTERVAL_SECONDS } })) {
        const name = legendName(target.legendFormat, point.labels);
        const row = values.get(name) ?? times.map(() => null);
        row[i] = point.value;
        values.set(name, row);
      }
    });
    return [...values.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, row]) => ({ name, values: row }));
  });
  return { panel, series };
}

/** The shapes preset, with fewer images, training steps and evaluation seeds. */
function shapesRound(overrides: { samplesPerPrompt: number; shards: number; maxSteps: number; seedsPerPrompt: number }): Record<string, unknown> {
  const preset = loadRoundConfig({ preset: 'shapes', root: PACKAGE_ROOT });
  return {
    ...preset,
    samplesPerPrompt: overrides.samplesPerPrompt,
    shards: overrides.shards,
    lora: { ...preset.lora, maxSteps: overrides.maxSteps, checkpointEvery: overrides.maxSteps },
    evaluation: { ...preset.evaluation, seedsPerPrompt: overrides.seedsPerPrompt },
  };
}

/** Scrapes until `round` settles; its result. */
async function whileScraping<T>(scrapeOnce: () => Promise<void>, round: Promise<T>): Promise<T> {
  const outcome: { finished: boolean; value?: T; error?: unknown } = { finished: false };
  void round.then(
    (value) => Object.assign(outcome, { finished: true, value }),
    (error: unknown) => Object.assign(outcome, { finished: true, error }),
  );
  while (!outcome.finished) await scrapeOnce();
  if (!('value' in outcome)) throw outcome.error;
  return outcome.value as T;
}

async function main(out: string): Promise<void> {
  requireChromium();
  const dashboard = readDashboard();
  const job = workerJob();
  const scratch = await mkdtemp(join(tmpdir(), 'dashboard-snapshot-'));
  const temporalPort = await freePort();
  const temporal = await startTemporal({ stateDir: join(scratch, 'temporal'), port: temporalPort, uiPort: null });
  const store = new SeriesStore();
  const times: number[] = [];
  try {
    const targets: Target[] = [];
    for (const { service, role } of WORKERS) {
      const address = `127.0.0.1:${await freePort()}`;
      const environment = { TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`, SELF_REWARD_STORE: join(scratch, 'store'), SELF_REWARD_METRICS_ADDRESS: address };
      await WorkerProcess.start(join(scratch, service), environment, role);
      targets.push({ instance: service, url: `http://${address}/metrics` });
    }
    const tick = async () => {
      times.push(await scrape(targets, job, store));
      await new Promise((r) => setTimeout(r, SCRAPE_SECONDS * 1000 - (Date.now() - times[times.length - 1]!)));
    };
    const connection = await Connection.connect({ address: `127.0.0.1:${temporalPort}` });
    const client = new SelfRewardClient(new Client({ connection }));

    const warmUp = { samplesPerPrompt: 1, shards: 2, maxSteps: 10, seedsPerPrompt: 1 };
    const warmUps = await Promise.all([1, 2].map(() => client.startRound(shapesRound(warmUp), { workflowId: `dashboard-warm-up-${randomUUID()}` })));
    await whileScraping(tick, Promise.all(warmUps.map((r) => r.result())));
    for (let i = 0; i < IDLE_SCRAPES; i++) await tick();
    const first = times.length - IDLE_SCRAPES;

    const started = Date.now();
    let stage = '';
    const onProgress = (progress: RoundProgress) => {
      if (progress.stage === stage) return;
      stage = progress.stage;
      console.log(`${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  ${stage}`);
    };
    const round = await client.startRound(shapesRound(MEASURED), { workflowId: `dashboard-snapshot-${randomUUID()}` });
    const { evaluation } = await whileScraping(tick, round.result({ onProgress }));
    const seconds = (Date.now() - started) / 1000;
    for (let i = 0; i < AFTER_SCRAPES; i++) await tick();
    await connection.close();
    const shown = times.slice(first);
    console.log(`round: ${seconds.toFixed(0)} s, win rate ${(evaluation.winRate * 100).toFixed(1)}%`);
    console.log(
      `scrapes: ${times.length} of ${targets.length} workers every ${SCRAPE_SECONDS} s, the last ${shown.length} (${((shown.at(-1)! - shown[0]!) / 1000).toFixed(0)} s) drawn`,
    );

    const panels = dashboard.panels.map((panel) => drawPanel(panel, store, shown));
    for (const { panel, series } of panels) console.log(`panel "${panel.title}": ${series.length === 0 ? 'no data' : series.map((s) => s.name).join(', ')}`);
    const html = dashboardPage({
      dashboard,
      times: shown,
      panels,
      width: PAGE_WIDTH,
      caption:
        `One round on the shapes pack (${seconds.toFixed(0)} s; two smaller rounds ran before it), a CPU worker and two GPU workers (on CPU) on two cores, ` +
        `scraped every ${SCRAPE_SECONDS} s; drawn from the dashboard's own queries by scripts/dashboard-snapshot.ts. Times UTC.`,
    });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: PAGE_WIDTH, height: 900 } });
      await page.setContent(html);
      await mkdir(dirname(out), { recursive: true });
      await page.screenshot({ path: out, fullPage: true });
    } finally {
      await browser.close();
    }
    console.log(`${panels.length} panels -> ${out} (${Math.round(statSync(out).size / 1024)} KB)`);
  } finally {
    await WorkerProcess.stopAll();
    await temporal.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

await main(resolve(process.argv[2] ?? join(PACKAGE_ROOT, 'docs', 'dashboard.png')));
