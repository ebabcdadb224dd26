/** The review's reads and writes in a real (local folder) store. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeEach, describe, expect, it } from 'vitest';

import { artifactKeys } from '../contract/keys.js';
import type { HumanVote } from '../contract/records.js';
import { LocalFolderStore } from '../store/local.js';
import { writeReviewFixture, type ReviewFixture } from '../test/reviewFixture.js';
import { ConfigError } from './config.js';
import { loadReviewPairs, recordVote, ReportReviewUpdater, updateReportReview, VoteReader } from './reviewStore.js';

let store: LocalFolderStore;
let fixture: ReviewFixture;

beforeEach(async () => {
  store = new LocalFolderStore(await mkdtemp(join(tmpdir(), 'review-store-')));
  fixture = await writeReviewFixture(store);
});

const vote = (choice: HumanVote['choice'], at = '2026-01-02T03:04:05.678Z'): HumanVote => ({ pair: 0, promptIndex: 0, seed: 1, left: 'base', choice, at });

describe('the review in the store', () => {
  it("loads the round's pairs from its evaluation records", async () => {
    const pairs = await loadReviewPairs(store, fixture.root);
    expect(pairs).toHaveLength(4);
    expect(pairs[0]!.text).toBe('a circle, prompt 0');
  });

  it('says what is missing when the folder has no finished evaluation', async () => {
    await expect(loadReviewPairs(store, 'runs/nothing/run/round-001')).rejects.toThrow(ConfigError);
    await expect(loadReviewPairs(store, 'runs/nothing/run/round-001')).rejects.toThrow(
      `${store.locate('runs/nothing/run/round-001/evaluation.json')}: not found; the round has no finished evaluation to review`,
    );
    await store.delete(artifactKeys.evaluationRecord(fixture.root, 0));
    await store.delete(artifactKeys.evaluationRecord(fixture.root, 1));
    await expect(loadReviewPairs(store, fixture.root)).rejects.toThrow(/no evaluation records with base and tuned images/);
  });

  it('writes each vote under a key of its own, never over another, and reads every one back', async () => {
    const keys = await Promise.all([
      recordVote(store, fixture.root, vote('tuned')),
      recordVote(store, fixture.root, vote('tuned')),
      recordVote(store, fixture.root, vote('same')),
    ]);
    expect(new Set(keys).size).toBe(3);
    for (const key of keys) expect(key).toMatch(new RegExp(`^${fixture.root}/review/votes/20260102T030405678Z-[0-9a-f]{16}\\.json$`));
    const reader = new VoteReader(store, fixture.root);
    expect((await reader.votes()).map((v) => v.choice).sort()).toEqual(['same', 'tuned', 'tuned']);
    // Another server's vote shows up on the next read.
    await recordVote(store, fixture.root, vote('base', '2026-01-02T03:05:00.000Z'));
    expect(await reader.figures()).toMatchObject({ votes: 4, tuned: 2, base: 1, same: 1, winRate: 0.625 });
  });

  it("rewrites the report's human-review section with the figures and nothing else", async () => {
    const key = artifactKeys.report(fixture.root);
    const before = (await store.get(key)).toString('utf8');
    expect(before).toContain('No votes yet');
    const figures = { votes: 2, tuned: 1, base: 0, same: 1, winRate: 0.75, winRateInterval: [0.5, 1] as const };
    expect(await updateReportReview(store, fixture.root, figures)).toBe(true);
    const after = (await store.get(key)).toString('utf8');
    expect(after).toContain('People prefer tuned in <b>75.0%</b> of 2 votes');
    expect(after.split('<h2>Human review</h2>')[0]).toBe(before.split('<h2>Human review</h2>')[0]);
    expect(after.split('<!-- /human-review -->')[1]).toBe(before.split('<!-- /human-review -->')[1]);
    await store.delete(key);
    expect(await updateReportReview(store, fixture.root, figures)).toBe(false);
  });
});

describe('the report updater', () => {
  it('runs one update at a time and one more for the requests made meanwhile', async () => {
    let runs = 0;
    let release: () => void = () => undefined;
    const updater = new ReportReviewUpdater(
      () => {
        runs += 1;
        return new Promise<void>((done) => (release = done));
      },
      () => undefined,
    );
    updater.request();
    updater.request();
    updater.request();
    expect(runs).toBe(1);
    release();
    await new Promise((r) => setTimeout(r, 10));
    expect(runs).toBe(2);
    release();
    await updater.settled();
    expect(runs).toBe(2);
  });

  it('hands a failed update to its error handler and carries on', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    const updater = new ReportReviewUpdater(
      () => (++runs === 1 ? Promise.reject(new Error('store down')) : Promise.resolve()),
      (e) => errors.push(e),
    );
    updater.request();
    await updater.settled();
    updater.request();
    await updater.settled();
    expect(runs).toBe(2);
    expect(errors).toEqual([new Error('store down')]);
  });
});
