/** `selfreward review`: people as the last referee of a finished round, on a blind A/B page of its held-out pairs. */
import type { SelfRewardClient } from '../client/index.js';
import { roundOfRoot } from '../contract/keys.js';
import type { HumanFigures } from '../models/evaluation/humanVotes.js';
import { connectClient, openStore, type Command, type Values } from './command.js';
import { ConfigError } from './config.js';
import { startReviewServer } from './reviewServer.js';
import { loadReviewPairs, ReportReviewUpdater, updateReportReview, VoteReader } from './reviewStore.js';

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The human figures in one line, for the terminal. */
export function humanSummary(figures: HumanFigures | null): string {
  if (figures === null) return 'human review: no votes yet';
  const { votes, tuned, base, same, winRate, winRateInterval } = figures;
  return `human review: people prefer tuned in ${percent(winRate)} of ${votes} votes (95% interval ${percent(winRateInterval[0])}-${percent(winRateInterval[1])}; tuned ${tuned}, base ${base}, same ${same})`;
}

/** The folder of a round that completed: its result names it. */
async function finishedRoundRoot(client: SelfRewardClient, id: string): Promise<string> {
  const { kind, status } = await client.describe(id);
  if (kind !== 'round') {
    const hint = kind === 'nightly' ? `; a night's round is ${id}-round` : '';
    const what = kind === null ? 'not a workflow of this plugin' : `a ${kind}`;
    throw new ConfigError(`${id} is ${what}, not a round: give a round's workflow id${hint}`);
  }
  if (status !== 'COMPLETED') throw new ConfigError(`round ${id} has not completed (${status}): only a finished round has its evaluation to review`);
  return (await client.round(id).result()).root;
}

function port(value: Values[string]): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || n > 65535)
    throw new ConfigError(`--port: expected an integer in [0, 65535], got ${JSON.stringify(value)}`);
  return n;
}

export const REVIEW_COMMAND: Command = {
  summary: "serve a blind A/B page of a finished round's held-out pairs (base vs tuned) and record people's votes",
  usage: 'selfreward review ID [--host HOST] [--port N] [--summary] [--root KEY]',
  options: {
    host: { type: 'string', description: 'address to listen on (default 127.0.0.1: this machine only)' },
    port: { type: 'string', description: 'port (default 0: any free one; the URL is printed)' },
    summary: { type: 'boolean', description: "print the human win rate, update the report's human-review section, serve nothing" },
    root: { type: 'string', description: "the round's folder in the store (runs/<id>/<run>/round-<r>) instead of ID, when Temporal no longer has the round" },
  },
  details: [
    'Each pair is one held-out prompt and seed: the base image and the tuned one, sides drawn per pair.',
    'Votes go to <round folder>/review/votes/ in SELF_REWARD_STORE, one JSON object each; the human win',
    "rate is (tuned + 0.5 * same) / votes with a 95% bootstrap interval over votes, and the round's report",
    'shows it in its "Human review" section, rewritten as votes arrive. Keys: ← or A left, → or D right, ↓ or S same.',
  ],
  async run(values, [id]) {
    const rootOption = values['root'] as string | undefined;
    if (rootOption === undefined && (id === undefined || id === '')) throw new ConfigError("give the round's workflow id (or --root)");
    const host = (values['host'] as string | undefined) ?? '127.0.0.1';
    const listenPort = port(values['port']);
    const root = rootOption ?? (await finishedRoundRoot(await connectClient(), id!));
    const round = roundOfRoot(root);
    if (round === null) throw new ConfigError(`--root: expected a round's folder, runs/<id>/<run>/round-<r>, got ${JSON.stringify(root)}`);
    const store = openStore();
    const pairs = await loadReviewPairs(store, root);
    const votes = new VoteReader(store, root);
    const report = async () => {
      if (!(await updateReportReview(store, root, await votes.figures()))) console.error(`selfreward review: the round has no report to update`);
    };

    if (values['summary']) {
      console.log(humanSummary(await votes.figures()));
      await report();
      return;
    }
    const updater = new ReportReviewUpdater(report, (error) => console.error(`selfreward review: could not update the report: ${String(error)}`));
    const server = await startReviewServer({
      store,
      root,
      round,
      pairs,
      votes,
      host,
      port: listenPort,
      onVote: () => updater.request(),
      onError: (error) => console.error(`selfreward review: ${String(error)}`),
    }).catch((error: Error) => {
      throw new ConfigError(`--host/--port: cannot listen on ${host} port ${listenPort} (${error.message})`);
    });
    console.log(`blind review of round ${round}: ${pairs.length} pairs at ${server.url} (Ctrl-C to stop)`);
    console.log(humanSummary(await votes.figures()));
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
    await server.close();
    await updater.settled();
    console.log(humanSummary(await votes.figures()));
  },
};
