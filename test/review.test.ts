/**
 * `selfreward review` end to end: the command serves a finished round's blind pairs, a person
 * votes in a real browser (Debian's chromium) by clicking and with the keys, and the votes reach
 * the store, the figures, the command's summary and the round's report.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { main } from '../cli/commands.js';
import { reviewPairs, type ReviewAnswer, type ReviewPair } from '../cli/reviewPairs.js';
import { artifactKeys } from '../contract/keys.js';
import type { HumanChoice, HumanVote } from '../contract/records.js';
import { humanFigures } from '../models/evaluation/humanVotes.js';
import { readText } from '../models/png.js';
import { LocalFolderStore } from '../store/local.js';
import { getJson } from '../store/store.js';
import { launchChromium } from './browser.js';
import { writeReviewFixture, type ReviewFixture } from './reviewFixture.js';
import { REPO_ROOT } from './servers.js';

/** Page loads and a CLI start take a while on a busy two-core machine. */
const TIMEOUT_MS = 120_000;

let folder: string;
let store: LocalFolderStore;
let fixture: ReviewFixture;
let pairs: ReviewPair[];
let command: ChildProcess;
let output = '';
let url: string;
let browser: Browser;
let page: Page;

/** Starts `selfreward review --root ...` as a user would, and waits for the URL it prints. */
async function startCommand(): Promise<string> {
  command = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'selfreward.ts'), 'review', '--root', fixture.root, '--port', '0'], {
    cwd: REPO_ROOT,
    env: { ...process.env, SELF_REWARD_STORE: folder },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  command.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  command.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const found = /at (http:\/\/127\.0\.0\.1:\d+\/) /.exec(output);
    if (found) return found[1]!;
    if (command.exitCode !== null || Date.now() > deadline) throw new Error(`selfreward review did not print its URL:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function served(path: string): Promise<Buffer> {
  return Buffer.from(await (await fetch(`${url}${path}`)).arrayBuffer());
}

async function servedPixels(path: string): Promise<Buffer> {
  return sharp(await served(path))
    .raw()
    .toBuffer();
}

async function storedVotes(): Promise<HumanVote[]> {
  const keys = await store.list(artifactKeys.reviewVotes(fixture.root));
  return Promise.all(keys.map((k) => getJson<HumanVote>(store, k)));
}

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'review-'));
  store = new LocalFolderStore(folder);
  fixture = await writeReviewFixture(store, { prompts: 3, seeds: 2 });
  pairs = reviewPairs(fixture.root, fixture.records);
  url = await startCommand();
  browser = await launchChromium();
  page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
}, TIMEOUT_MS * 2);

afterAll(async () => {
  await browser?.close();
  if (command?.exitCode === null) command.kill('SIGKILL');
});

describe('selfreward review', () => {
  // Clicks and keys, every answer at least once, each key on both sides of the tuned image.
  const answers: { how: 'click' | 'key'; what: string; answer: ReviewAnswer }[] = [
    { how: 'click', what: '#left', answer: 'left' },
    { how: 'key', what: 'ArrowRight', answer: 'right' },
    { how: 'click', what: '#same', answer: 'same' },
    { how: 'key', what: 'a', answer: 'left' },
    { how: 'key', what: 'd', answer: 'right' },
    { how: 'key', what: 's', answer: 'same' },
  ];

  it('serves a page that does not tell which side is which', async () => {
    expect(pairs).toHaveLength(answers.length);
    // The fixture's sides are not all the same, or the test would not show much.
    expect(new Set(pairs.map((p) => p.left)).size).toBe(2);
    await page.goto(url);
    await expect.poll(() => page.locator('#progress').innerText()).toBe('Pair 1 of 6');
    const html = await page.content();
    for (const hidden of ['runs/', 'evaluation', 'lora', folder]) expect(html).not.toContain(hidden);
    expect(await page.locator('#left-image').getAttribute('src')).toBe('/pair/0/left.png');
    expect(await page.locator('#right-image').getAttribute('src')).toBe('/pair/0/right.png');

    // Each side's image is the stored one's pixels, without the text that names its generator.
    for (const side of ['left', 'right'] as const) {
      expect(readText(await served(`pair/0/${side}.png`))).toEqual({});
      const stored = await store.get(pairs[0]!.images[side]);
      expect(readText(stored)['generator']).toBeDefined();
      expect(await servedPixels(`pair/0/${side}.png`)).toEqual(await sharp(stored).raw().toBuffer());
    }
  });

  it('refuses a vote for an unknown pair, a bad choice or a body that is not JSON, and stores none of them', async () => {
    const post = (body: string, type = 'application/json') => fetch(`${url}vote`, { method: 'POST', headers: { 'content-type': type }, body });
    const cases: [Response, number, string][] = [
      [await post(JSON.stringify({ pair: 6, choice: 'left' })), 400, 'pair: expected an integer in [0, 5], got 6'],
      [await post(JSON.stringify({ pair: 0, choice: 'tuned' })), 400, 'choice: expected "left", "right" or "same", got "tuned"'],
      [await post('left'), 400, 'the body is not JSON'],
      [await post(JSON.stringify({ pair: 0, choice: 'left' }), 'text/plain'), 415, 'send the vote as application/json'],
      [await fetch(`${url}vote`), 405, '/vote takes POST only'],
      [await fetch(`${url}pair/6/left.png`), 404, 'no pair 6: the pairs are 0 to 5'],
      [await fetch(`${url}report.html`), 404, 'no page at /report.html'],
    ];
    for (const [response, status, error] of cases) {
      expect(response.status).toBe(status);
      expect(await response.json()).toEqual({ error });
    }
    expect(await storedVotes()).toEqual([]);
  });

  it('records each vote a person casts by clicking or with the keys, resolved to the generator it prefers', async () => {
    for (const [i, { how, what }] of answers.entries()) {
      await expect.poll(() => page.locator('#progress').innerText()).toBe(`Pair ${i + 1} of 6`);
      // The person sees both images before answering.
      const widths = "['left-image', 'right-image'].map((id) => document.getElementById(id).naturalWidth)";
      await expect.poll(() => page.evaluate<number[]>(widths)).toEqual([8, 8]);
      if (how === 'click') await page.click(what);
      else await page.keyboard.press(what);
      await expect.poll(() => page.locator('#status').innerText()).toBe(i === 0 ? '1 vote so far' : `${i + 1} votes so far`);
    }
    // What the person preferred, read off the pixels they were shown (the fixture's tuned images are the bright ones).
    const shownLeft = async (i: number): Promise<HumanVote['left']> => ((await servedPixels(`pair/${i}/left.png`))[0]! >= 160 ? 'tuned' : 'base');
    const expected: Omit<HumanVote, 'at'>[] = [];
    for (const [i, { answer }] of answers.entries()) {
      const left = await shownLeft(i);
      const choice: HumanChoice = answer === 'same' ? 'same' : answer === 'left' ? left : left === 'tuned' ? 'base' : 'tuned';
      expected.push({ pair: i, promptIndex: pairs[i]!.promptIndex, seed: pairs[i]!.seed, left, choice });
    }
    const votes = (await storedVotes()).sort((a, b) => a.pair - b.pair);
    expect(votes.map(({ at: _at, ...rest }) => rest)).toEqual(expected);
    for (const v of votes) expect(Date.parse(v.at)).not.toBeNaN();

    // After the last pair the page shows the figures of every vote so far.
    const figures = humanFigures(expected.map((v) => v.choice))!;
    await expect.poll(() => page.locator('#figures').innerText()).toContain(`6 votes so far; people prefer tuned in ${(100 * figures.winRate).toFixed(1)}%`);
    expect(await (await fetch(`${url}summary`)).json()).toEqual(figures);
  });

  it("puts the human win rate in the round's report and prints it when it stops", async () => {
    const figures = humanFigures((await storedVotes()).map((v) => v.choice))!;
    const headline = `People prefer tuned in <b>${(100 * figures.winRate).toFixed(1)}%</b> of 6 votes`;
    await expect.poll(async () => (await store.get(artifactKeys.report(fixture.root))).toString('utf8'), { timeout: TIMEOUT_MS }).toContain(headline);
    const exited = new Promise<number | null>((done) => command.once('exit', done));
    command.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(output.trim().split('\n').at(-1)).toBe(
      `human review: people prefer tuned in ${(100 * figures.winRate).toFixed(1)}% of 6 votes (95% interval ${(100 * figures.winRateInterval[0]).toFixed(1)}%-${(100 * figures.winRateInterval[1]).toFixed(1)}%; tuned ${figures.tuned}, base ${figures.base}, same ${figures.same})`,
    );
  });

  it('--summary prints the figures; a folder without an evaluation, or no round at all, is one line and exit code 2', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    vi.stubEnv('SELF_REWARD_STORE', folder);
    try {
      expect(await main(['review', '--root', fixture.root, '--summary'])).toBe(0);
      expect(log.mock.calls.at(-1)?.[0]).toMatch(/^human review: people prefer tuned in [\d.]+% of 6 votes/);
      expect(await main(['review', '--root', 'runs/other/run-1/round-001', '--summary'])).toBe(2);
      expect(error.mock.calls.at(-1)?.[0]).toBe(
        `selfreward review: ${store.locate('runs/other/run-1/round-001/evaluation.json')}: not found; the round has no finished evaluation to review (is runs/other/run-1/round-001 a round's folder in this store?)`,
      );
      expect(await main(['review', '--root', 'runs/other'])).toBe(2);
      expect(error.mock.calls.at(-1)?.[0]).toBe(`selfreward review: --root: expected a round's folder, runs/<id>/<run>/round-<r>, got "runs/other"`);
      expect(await main(['review'])).toBe(2);
      expect(error.mock.calls.at(-1)?.[0]).toBe("selfreward review: give the round's workflow id (or --root)");
      expect(await main(['review', '--root', fixture.root, '--port', 'any'])).toBe(2);
      expect(error.mock.calls.at(-1)?.[0]).toBe('selfreward review: --port: expected an integer in [0, 65535], got "any"');
      const taken = createServer();
      await new Promise<void>((listening) => taken.listen(0, '127.0.0.1', listening));
      const { port } = taken.address() as AddressInfo;
      try {
        expect(await main(['review', '--root', fixture.root, '--port', String(port)])).toBe(2);
        expect(error.mock.calls.at(-1)?.[0]).toMatch(
          new RegExp(`^selfreward review: --host/--port: cannot listen on 127\\.0\\.0\\.1 port ${port} \\(.*EADDRINUSE`),
        );
      } finally {
        taken.close();
      }
    } finally {
      vi.unstubAllEnvs();
      log.mockRestore();
      error.mockRestore();
    }
  });
});
