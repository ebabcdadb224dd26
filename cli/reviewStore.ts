/** What `selfreward review` reads from and writes to the artifact store: the round's pairs, the votes, the report's human-review section. */
import { randomBytes } from 'node:crypto';

import { humanReviewSection, withHumanReviewSection } from '../activities/reportPage.js';
import { artifactKeys } from '../contract/keys.js';
import type { EvaluationRecord, HumanVote } from '../contract/records.js';
import { humanFigures, type HumanFigures } from '../models/evaluation/humanVotes.js';
import { findJson, getJson, putJson, type ArtifactStore } from '../store/store.js';
import { ConfigError } from './config.js';
import { reviewPairs, type ReviewPair } from './reviewPairs.js';

/** The round's blind pairs; a ConfigError naming what is missing when the round has no finished evaluation. */
export async function loadReviewPairs(store: ArtifactStore, root: string): Promise<ReviewPair[]> {
  const manifest = artifactKeys.evaluateManifest(root);
  if (!(await store.exists(manifest))) {
    throw new ConfigError(`${store.locate(manifest)}: not found; the round has no finished evaluation to review (is ${root} a round's folder in this store?)`);
  }
  const recordKeys = await store.list(`${root}/evaluation/pairs/`);
  const records = await Promise.all(recordKeys.map((key) => getJson<EvaluationRecord>(store, key)));
  const pairs = reviewPairs(root, records);
  if (pairs.length === 0) throw new ConfigError(`${store.location}: no evaluation records with base and tuned images under ${root}/evaluation/pairs/`);
  return pairs;
}

/** A vote's name: its time first, so the folder lists in the order votes came, then a random part, so no two writers pick the same one. */
function voteName(at: Date): string {
  return `${at.toISOString().replace(/[-:.]/g, '')}-${randomBytes(8).toString('hex')}`;
}

export async function recordVote(store: ArtifactStore, root: string, vote: HumanVote): Promise<string> {
  const key = artifactKeys.reviewVote(root, voteName(new Date(vote.at)));
  await putJson(store, key, vote);
  return key;
}

/**
 * The round's votes, all of them, from every server that recorded some. A vote never changes once
 * written, so each is read once and the next call lists the folder and reads only the new ones.
 */
export class VoteReader {
  private readonly read = new Map<string, HumanVote>();

  constructor(
    private readonly store: ArtifactStore,
    private readonly root: string,
  ) {}

  async votes(): Promise<HumanVote[]> {
    const keys = await this.store.list(artifactKeys.reviewVotes(this.root));
    for (const key of keys.filter((k) => !this.read.has(k))) {
      const vote = await findJson<HumanVote>(this.store, key);
      if (vote !== null) this.read.set(key, vote);
    }
    return keys.flatMap((k) => this.read.get(k) ?? []);
  }

  async figures(): Promise<HumanFigures | null> {
    return humanFigures((await this.votes()).map((v) => v.choice));
  }
}

/**
 * Writes the figures into the report's human-review section. The report is written once at the
 * end of the round, before any vote, so the section is the one part of it that changes later.
 * False when the round has no report.
 */
export async function updateReportReview(store: ArtifactStore, root: string, figures: HumanFigures | null): Promise<boolean> {
  const key = artifactKeys.report(root);
  if (!(await store.exists(key))) return false;
  const html = (await store.get(key)).toString('utf8');
  const updated = withHumanReviewSection(html, humanReviewSection(figures));
  if (updated !== html) await store.put(key, updated);
  return true;
}

/**
 * Keeps the report's human-review section up to date as votes arrive: one rewrite at a time, and
 * one more after it when votes came in meanwhile, so a burst of votes costs two writes of the
 * report, not one per vote.
 */
export class ReportReviewUpdater {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly update: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  request(): void {
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.update().catch(this.onError);
      } while (this.again);
      this.running = null;
    })();
  }

  /** Resolves once no rewrite is running or pending. */
  async settled(): Promise<void> {
    while (this.running !== null) await this.running;
  }
}
