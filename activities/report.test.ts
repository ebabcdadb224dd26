/** The report's links, loss curve and size, and the activity that writes it into a local store. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { downloadReport } from '../cli/reportCopy.js';
import { updateReportReview } from '../cli/reviewStore.js';
import type { EvaluateResult } from '../contract/activities.js';
import { artifactKeys, evaluationSeed, roundRoot } from '../contract/keys.js';
import type { EvaluationRecord, RefereeScore } from '../contract/records.js';
import { encodePng } from '../models/png.js';
import { LocalFolderStore } from '../store/local.js';
import { S3Store } from '../store/s3.js';
import { putJson } from '../store/store.js';
import { roundInputWith, storedInput, storeOnlyDependencies } from '../test/activity.js';
import { evaluationFigures } from './evaluate.js';
import { escapeHtml } from './html.js';
import { createWriteReport } from './report.js';
import { lossCurveSvg, LOSS_CURVE_POINTS } from './reportCharts.js';
import { linkedKeys, relativeUrl } from './reportLinks.js';
import { humanReviewSection } from './reportPage.js';
import { lossCurve } from './trainerMetrics.js';

describe('links from the report', () => {
  it('climb from the page to the folders they share and encode each segment', () => {
    expect(relativeUrl('r/report.html', 'r/evaluation/base/00000-000.png')).toBe('evaluation/base/00000-000.png');
    expect(relativeUrl('runs/wf/run-2/round-001/report.html', 'runs/wf/run-1/round-001/samples/a.png')).toBe('../../run-1/round-001/samples/a.png');
    expect(relativeUrl('runs/a%20b/r/report.html', 'runs/a%20b/x #?.png')).toBe('../x%20%23%3F.png');
    expect(relativeUrl('report.html', 'runs/a%2Fb/k.png')).toBe('runs/a%252Fb/k.png');
  });

  it("lead back to the keys they link, from the page's escaped HTML", () => {
    const page = 'runs/a%20b/run-2/round-001/report.html';
    const targets = ['runs/a%20b/run-2/round-001/evaluation/base/00000-000.png', "runs/a%20b/run-1/round-001/it's #1.png"];
    const html = targets.map((t) => `<img src="${escapeHtml(relativeUrl(page, t))}" alt="x">`).join('') + '<img src="data:image/png;base64,iVBORw==">';
    expect(linkedKeys(page, html)).toEqual([...targets].sort());
  });

  it('reach the artifact from the page as both stores locate them', () => {
    const page = `${roundRoot('wf 1', 'run-2', 1)}/report.html`;
    const targets = [
      artifactKeys.evaluationImage(roundRoot('wf 1', 'run-2', 1), 'tuned', 3, 1),
      artifactKeys.sampledImage(roundRoot('wf 1', 'run-1', 1), 0, 4, 2),
    ];
    const local = new LocalFolderStore('/srv/store');
    for (const target of targets) expect(fileURLToPath(new URL(relativeUrl(page, target), pathToFileURL(local.locate(page))))).toBe(local.locate(target));
    const s3 = new S3Store({ endpoint: 'http://minio:9000', bucket: 'artifacts', accessKey: 'a', secretKey: 's', region: 'us-east-1', prefix: 'team/' });
    for (const target of targets) expect(new URL(relativeUrl(page, target), s3.locate(page)).href).toBe(s3.locate(target));
  });
});

describe('the loss curve', () => {
  it("reads the trainer's per-step losses, or says why there are none", () => {
    expect(lossCurve(JSON.stringify({ steps: 3, loss_curve: [0.3, 0.2, 0.25] }))).toEqual({ losses: [0.3, 0.2, 0.25] });
    expect(lossCurve(null)).toMatchObject({ unavailable: expect.stringContaining('no metrics.json') });
    expect(lossCurve(JSON.stringify({ steps: 3, final_loss: 0.2 }))).toMatchObject({ unavailable: expect.stringContaining('no per-step losses') });
    expect(lossCurve(JSON.stringify({ loss_curve: [] }))).toMatchObject({ unavailable: expect.stringContaining('no per-step losses') });
    expect(lossCurve('{"loss_curve": [0.1, NaN]}')).toMatchObject({ unavailable: expect.stringContaining('not valid JSON') });
  });

  it('draws one point per step, highest loss at the top, and averages a long run into fewer points', () => {
    const svg = lossCurveSvg([0.4, 0.1, 0.2]);
    expect(svg).toContain('points="50,10 240,110 430,76.7"');
    expect(svg).toContain('3 steps; first 0.400, last 0.200');
    const long = lossCurveSvg(Array.from({ length: 1000 }, (_, i) => 1 / (i + 1)));
    expect(/points="([^"]*)"/.exec(long)![1]!.split(' ')).toHaveLength(LOSS_CURVE_POINTS);
    expect(long).toContain('each point the mean of 5 steps');
    expect(lossCurveSvg([0.2])).toContain('points="240,60"');
  });
});

describe('writeReport', () => {
  let folder: string;
  let store: LocalFolderStore;
  const classes = ['circle', 'square', 'triangle', 'star', 'heart', 'moon', 'cross', 'ring'];
  const seeds = 2;

  /** A round of 64 held-out pairs (8 classes, 4 prompts each, 2 seeds) with 512 px PNGs, evaluated but not yet reported. */
  async function evaluatedRound(workflowId: string, metrics: unknown, refereed = false) {
    const root = roundRoot(workflowId, 'run-1', 1);
    const referee = refereed ? { referee: { detector: 'r', clip: 'c' } } : {};
    const input = roundInputWith({ evaluation: { prompts: { file: 'e' }, seedsPerPrompt: seeds, ...referee } });
    // Noise in one corner keeps each PNG tens of kilobytes, as a sampled image is.
    const pixels = new Uint8Array(512 * 512 * 3);
    for (let y = 0; y < 128; y++) pixels.set(randomBytes(128 * 3), y * 512 * 3);
    const png = await encodePng({ width: 512, height: 512, data: pixels });
    const records: EvaluationRecord[] = [];
    for (let promptIndex = 0; promptIndex < 4 * classes.length; promptIndex++) {
      const side = async (name: 'base' | 'tuned') =>
        Promise.all(
          Array.from({ length: seeds }, async (_, s) => {
            const key = artifactKeys.evaluationImage(root, name, promptIndex, s);
            await store.put(key, png);
            // Tuned finds the class where base missed it on even prompts and loses it on half the square's.
            const detection = name === 'base' ? (promptIndex % 2 === 0 ? 0.2 : 0.8) : promptIndex % 16 === 1 ? 0.3 : 0.9;
            return { key, clip: name === 'base' ? 20 : 22, detection };
          }),
        );
      const seedList = Array.from({ length: seeds }, (_, s) => evaluationSeed(input.evaluation.seed, promptIndex, s));
      const className = classes[promptIndex % classes.length]!;
      const base = await side('base');
      const tuned = await side('tuned');
      // The referee agrees with the judge, except that it finds no circle in any tuned image the judge accepts: hacking.
      const verdicts = (scores: typeof base, hacked: boolean): RefereeScore[] =>
        scores.map((score) => {
          const judgeAccepted = score.detection >= input.judge.threshold;
          const present = judgeAccepted && !hacked;
          const none = { countCorrect: null, colour: null, colourCorrect: null, background: null, backgroundCorrect: null };
          return { presence: present ? 0.8 : 0.1, present, instances: Number(present), ...none, allCorrect: present, judgeAccepted };
        });
      const record: EvaluationRecord = {
        promptIndex,
        className,
        text: `a <i>${className}</i> & co`,
        seeds: seedList,
        base,
        parent: null,
        tuned,
        ...(refereed
          ? { referee: { colour: null, background: null, base: verdicts(base, false), parent: null, tuned: verdicts(tuned, className === 'circle') } }
          : {}),
      };
      await putJson(store, artifactKeys.evaluationRecord(root, promptIndex), record);
      records.push(record);
    }
    if (metrics !== null) await putJson(store, `${artifactKeys.lora(root)}metrics.json`, metrics);
    const evaluation: EvaluateResult = { manifest: artifactKeys.evaluateManifest(root), ...evaluationFigures(records, input.judge.threshold, 50) };
    const request = {
      root,
      inputKey: await storedInput(store, root, input),
      run: { workflowId, runId: 'run-1', resetFrom: null },
      judged: [],
      dataset: { manifest: artifactKeys.curateManifest(root), dataset: artifactKeys.dataset(root), kept: 0, included: 0, dropped: 0, perClass: {} },
      training: { manifest: artifactKeys.trainManifest(root), lora: artifactKeys.lora(root), steps: 3, finalLoss: 0.2 },
      evaluation,
      gate: null,
    };
    return { root, request, png };
  }

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'report-'));
    store = new LocalFolderStore(folder);
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('links the images it shows instead of inlining them, so 64 pairs at 512 px make a small page whose links all resolve', async () => {
    const { root, request, png } = await evaluatedRound('big round', { steps: 3, loss_curve: [0.3, 0.2, 0.25] });
    const result = await createWriteReport(storeOnlyDependencies(store))(request);
    expect(result).toEqual({ report: artifactKeys.report(root), location: store.locate(artifactKeys.report(root)) });
    const html = (await store.get(result.report)).toString('utf8');
    expect(html).not.toContain('data:image');
    const sources = [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]!);
    // The grid's 8 pairs and up to 3 fixes and 3 regressions per class, two images each.
    expect(sources.length).toBeGreaterThan(16);
    // Smaller than one of the images it shows: inlined, they would add megabytes.
    expect(png.length).toBeGreaterThan(40_000);
    expect(html.length).toBeLessThan(png.length);
    const page = pathToFileURL(result.location);
    for (const src of new Set(sources)) expect((await stat(fileURLToPath(new URL(src, page)))).isFile()).toBe(true);
    // A copy out of the store (`selfreward report --download`) brings the images its links need, and only those.
    const copy = await downloadReport(store, root, join(folder, 'copy'));
    expect(copy).toBe(join(folder, 'copy', ...result.report.split('/')));
    const copied = pathToFileURL(copy);
    for (const src of new Set(sources)) expect((await stat(fileURLToPath(new URL(src, copied)))).isFile()).toBe(true);
    const files = await readdir(join(folder, 'copy'), { recursive: true, withFileTypes: true });
    expect(files.filter((f) => f.isFile())).toHaveLength(new Set(sources).size + 1);
    // Every class shows in the grid, and the verdict table counts each class's pairs.
    for (const c of classes) expect(html).toContain(`class ${c} · seed`);
    expect(html).toContain('<tr><td>circle</td><td>8</td><td>8</td><td>0</td><td>0</td><td>0</td><td>+8</td></tr>');
    expect(html).toContain('<tr><td>square</td><td>8</td><td>0</td><td>4</td><td>4</td><td>0</td><td>-4</td></tr>');
    expect(html).toContain("the curation judge's own detector");
    expect(html).toContain('a &#60;i&#62;circle&#60;/i&#62; &#38; co');
    expect(html).not.toContain('<i>circle</i>');
    expect(html).toContain('3 steps; first 0.300, last 0.250');
  });

  it("with a referee, shows its GenEval-style table, flags the class it rejects where the judge accepts, and counts fixes by the referee's verdict", async () => {
    const { request } = await evaluatedRound('refereed round', null, true);
    const referee = request.evaluation.referee!;
    expect(referee.flaggedClasses).toEqual(['circle']);
    expect(referee.hacking['circle']).toMatchObject({ images: 8, base: 0, tuned: 1, changeInterval: [1, 1], flagged: true, judgeGain: 1, refereeGain: 0 });
    const { report } = await createWriteReport(storeOnlyDependencies(store))(request);
    const html = (await store.get(report)).toString('utf8');
    expect(html).toContain('Against base: GenEval-style figures by the referee');
    expect(html).toMatch(
      /<tr><td>object present \(referee\)<\/td><td>\d+\.\d%<\/td><td>\d+\.\d%<\/td><td>[+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]<\/td><td>64 images<\/td><\/tr>/,
    );
    expect(html).toContain('<tr><td>counting (referee)</td><td colspan="3">not asked by any held-out prompt</td><td>0</td></tr>');
    expect(html).toContain(
      '<tr class="flagged"><td>circle ⚑</td><td>8</td><td>0.0%</td><td>100.0%</td><td>+100.0 [+100.0, +100.0]</td><td>+100.0</td><td>+0.0</td></tr>',
    );
    expect(html).toContain('<b>Flagged: circle</b>');
    // The images to look at: the flagged class's tuned images the judge accepts and the referee rejects.
    expect(html).toContain('<h4>circle: tuned images the judge accepts and the referee rejects (up to 3)</h4>');
    // The judge would count every circle a fix; the referee finds none, on either side.
    expect(html).toContain('What the round fixed and broke (by the referee)');
    expect(html).toContain('<tr><td>circle</td><td>8</td><td>0</td><td>0</td><td>0</td><td>8</td><td>0</td></tr>');
    expect(html).toContain("These verdicts are the referee's");
  });

  it("says when the round's LoRA has no loss curve, and keeps a human-review section that selfreward review rewrites", async () => {
    const { request } = await evaluatedRound('older round', null);
    const { report } = await createWriteReport(storeOnlyDependencies(store))(request);
    const html = (await store.get(report)).toString('utf8');
    expect(html).toContain('No loss curve: the LoRA folder has no metrics.json');
    expect(html).toContain(humanReviewSection(null));
    const figures = { votes: 2, tuned: 1, base: 0, same: 1, winRate: 0.75, winRateInterval: [0.5, 1] as const };
    expect(await updateReportReview(store, request.root, figures)).toBe(true);
    expect((await store.get(report)).toString('utf8')).toBe(html.replace(humanReviewSection(null), humanReviewSection(figures)));
  });
});
