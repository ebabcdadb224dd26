/** The command line against a real local stack started by its own `stack` command. */
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { validateRoundInput } from '../config/round.js';
import { freePort } from '../test/servers.js';
import { main } from './commands.js';
import { REPO_ROOT } from '../test/servers.js';
import { waitForPort } from './servers.js';
import { validateCampaignInput } from '../config/campaign.js';

const COMMANDS = ['stack', 'worker', 'round', 'campaign', 'schema', 'status', 'result', 'cancel', 'report', 'review'];

function captured(): { out: () => string; err: () => string; restore: () => void } {
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  return {
    out: () => log.mock.calls.map((c) => c.join(' ')).join('\n'),
    err: () => error.mock.calls.map((c) => c.join(' ')).join('\n'),
    restore: () => {
      log.mockRestore();
      error.mockRestore();
    },
  };
}

describe('help', () => {
  it.each(COMMANDS)('%s --help names its usage and exits 0', async (name) => {
    const io = captured();
    expect(await main([name, '--help'])).toBe(0);
    expect(io.out()).toContain(`selfreward ${name}`);
    io.restore();
  });

  it('lists the commands, and refuses unknown ones and options', async () => {
    const io = captured();
    expect(await main(['--help'])).toBe(0);
    for (const name of COMMANDS) expect(io.out()).toContain(`  ${name}`);
    expect(await main(['launch'])).toBe(2);
    expect(await main(['round', '--shards', '3'])).toBe(2);
    expect(io.err()).toContain("Unknown option '--shards'");
    io.restore();
  });

  it('--print writes the validated input the Web UI form takes, with absolute paths, and starts nothing', async () => {
    const io = captured();
    // TEMPORAL_ADDRESS points nowhere: printing must not contact Temporal.
    vi.stubEnv('TEMPORAL_ADDRESS', '127.0.0.1:1');
    expect(await main(['round', '--preset', 'shapes', '--print'])).toBe(0);
    const round = JSON.parse(io.out()) as { generator: { base: string }; judge: { detector: string } };
    expect(validateRoundInput(round).ok).toBe(true);
    expect(round.generator.base).toBe(join(REPO_ROOT, 'packs', 'shapes', 'generator'));
    expect(isAbsolute(round.judge.detector)).toBe(true);
    io.restore();

    const campaignIo = captured();
    expect(await main(['campaign', '--preset', 'shapes', '--rounds', '3', '--print'])).toBe(0);
    const campaign = JSON.parse(campaignIo.out()) as { rounds: number; round: unknown };
    expect(validateCampaignInput(campaign).ok).toBe(true);
    expect(campaign.rounds).toBe(3);
    expect(campaign.round).toEqual(round);
    campaignIo.restore();
    vi.unstubAllEnvs();
  });

  it('prints the JSON Schema of each input, and refuses an unknown one', async () => {
    const io = captured();
    expect(await main(['schema', 'round'])).toBe(0);
    const schema = JSON.parse(io.out()) as { title: string; required: string[] };
    expect(schema).toMatchObject({ title: 'round input', required: ['generator', 'judge', 'evaluation'] });
    expect(await main(['schema', 'nightly-ish'])).toBe(2);
    expect(io.err()).toContain('expected round or campaign, got "nightly-ish"');
    io.restore();
  });

  it('names the bad field of a configuration before contacting Temporal', async () => {
    const io = captured();
    const folder = await mkdtemp(join(tmpdir(), 'cli-'));
    const file = join(folder, 'round.json');
    await writeFile(file, JSON.stringify({ generator: { base: 'g' } }));
    expect(await main(['round', file])).toBe(2);
    expect(io.err()).toContain('judge: expected an object with at least "detector"');
    io.restore();
  });
});

describe('on the local stack', () => {
  let stack: ReturnType<typeof spawn>;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    const state = await mkdtemp(join(tmpdir(), 'cli-stack-'));
    stack = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'cli', 'selfreward.ts'), 'stack', '--state', state, '--port', String(port), '--headless'],
      {
        cwd: REPO_ROOT,
        stdio: 'ignore',
      },
    );
    await waitForPort(port, stack, 60_000);
    process.env['TEMPORAL_ADDRESS'] = `127.0.0.1:${port}`;
  });

  afterAll(async () => {
    delete process.env['TEMPORAL_ADDRESS'];
    const exited = new Promise((done) => stack.once('exit', done));
    stack.kill('SIGTERM');
    await exited;
  });

  it('says in one line what is wrong with a namespace, a worker start or a configuration path', async () => {
    const io = captured();
    try {
      vi.stubEnv('TEMPORAL_NAMESPACE', 'no-such-namespace');
      expect(await main(['status', 'any-round'])).toBe(2);
      expect(await main(['worker', '--role', 'cpu'])).toBe(2);
      vi.stubEnv('TEMPORAL_NAMESPACE', 'default');
      vi.stubEnv('SELF_REWARD_THREADS', 'many');
      expect(await main(['worker', '--role', 'gpu'])).toBe(2);
    } finally {
      vi.unstubAllEnvs();
    }
    expect(await main(['round', tmpdir()])).toBe(2);
    const errors = io.err().split('\n');
    expect(errors[0]).toMatch(/^selfreward status: .*no-such-namespace/);
    expect(errors[1]).toMatch(/^selfreward worker: cannot start a worker in namespace no-such-namespace \(check TEMPORAL_NAMESPACE\): /);
    expect(errors[2]).toBe('selfreward worker: SELF_REWARD_THREADS: expected a positive integer, got "many"');
    expect(errors[3]).toBe(`selfreward round: ${tmpdir()}: not a file; expected a JSON or YAML configuration file`);
    io.restore();
  });

  it('says when a workflow does not exist', async () => {
    const io = captured();
    expect(await main(['status', 'no-such-round'])).toBe(2);
    expect(await main(['review', 'no-such-round'])).toBe(2);
    const errors = io.err().split('\n');
    expect(errors[0]).toMatch(/^selfreward status: .*no-such-round/);
    expect(errors[1]).toMatch(/^selfreward review: .*no-such-round/);
    expect(errors).toHaveLength(2);
    io.restore();
  });
});
