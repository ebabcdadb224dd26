/**
 * The HTTP server of `selfreward review` (node:http): the blind page, each pair's two images
 * under opaque routes, votes in, figures out. The page never learns a store key, a path or a side.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { HumanVote } from '../contract/records.js';
import { pixelsOnly } from '../models/png.js';
import type { ArtifactStore } from '../store/store.js';
import { reviewPageHtml } from './reviewPage.js';
import { parseVote, resolveAnswer, type ReviewPair, type Side } from './reviewPairs.js';
import { recordVote, type VoteReader } from './reviewStore.js';

export interface ReviewServerOptions {
  readonly store: ArtifactStore;
  readonly root: string;
  readonly round: number;
  readonly pairs: readonly ReviewPair[];
  readonly votes: VoteReader;
  /** Address to listen on; 127.0.0.1 keeps the page on this machine. */
  readonly host: string;
  /** 0 for any free port. */
  readonly port: number;
  /** Called after each vote is stored. */
  readonly onVote?: (vote: HumanVote) => void;
  /** Where the server reports what went wrong on its side (the page gets no details). */
  readonly onError?: (error: unknown) => void;
}

export interface ReviewServer {
  readonly url: string;
  close(): Promise<void>;
}

/** A vote is a few dozen bytes; anything much larger is not one. */
const MAX_BODY_BYTES = 4096;
const IMAGE_ROUTE = /^\/pair\/(\d+)\/(left|right)\.png$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(response: ServerResponse, status: number, type: string, body: string | Buffer): void {
  response.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  response.end(body);
}

const sendJson = (response: ServerResponse, status: number, value: unknown) => send(response, status, 'application/json; charset=utf-8', JSON.stringify(value));

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `a vote is at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function urlOf(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}/`;
}

export async function startReviewServer(options: ReviewServerOptions): Promise<ReviewServer> {
  const { store, root, pairs, votes } = options;
  const page = reviewPageHtml(options.round, pairs);

  async function vote(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // A cross-site form cannot send JSON without the browser asking first, and the server never agrees.
    if (!(request.headers['content-type'] ?? '').startsWith('application/json')) throw new HttpError(415, 'send the vote as application/json');
    let body: unknown;
    try {
      body = JSON.parse(await readBody(request));
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw new HttpError(400, 'the body is not JSON');
    }
    const parsed = parseVote(body, pairs);
    if (!parsed.ok) throw new HttpError(400, parsed.message);
    const { pair } = parsed;
    const recorded: HumanVote = {
      pair: pair.pair,
      promptIndex: pair.promptIndex,
      seed: pair.seed,
      left: pair.left,
      choice: resolveAnswer(pair, parsed.answer),
      at: new Date().toISOString(),
    };
    await recordVote(store, root, recorded);
    options.onVote?.(recorded);
    sendJson(response, 200, { votes: (await votes.votes()).length });
  }

  async function image(response: ServerResponse, n: number, side: Side): Promise<void> {
    const pair = pairs[n];
    if (pair === undefined) throw new HttpError(404, `no pair ${n}: the pairs are 0 to ${pairs.length - 1}`);
    send(response, 200, 'image/png', pixelsOnly(await store.get(pair.images[side])));
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://review').pathname;
    const method = request.method ?? 'GET';
    const expect = (allowed: string) => {
      if (method !== allowed) throw new HttpError(405, `${path} takes ${allowed} only`);
    };
    if (path === '/') {
      expect('GET');
      return send(response, 200, 'text/html; charset=utf-8', page);
    }
    if (path === '/vote') {
      expect('POST');
      return vote(request, response);
    }
    if (path === '/summary') {
      expect('GET');
      const figures = await votes.figures();
      return sendJson(response, 200, figures ?? { votes: 0 });
    }
    const match = IMAGE_ROUTE.exec(path);
    if (match !== null) {
      expect('GET');
      return image(response, Number(match[1]), match[2] as Side);
    }
    throw new HttpError(404, `no page at ${path}`);
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (error instanceof HttpError) return sendJson(response, error.status, { error: error.message });
      // Store errors name keys and locations: they go to the terminal, not to the page.
      options.onError?.(error);
      sendJson(response, 500, { error: 'the server could not read or write the store; its terminal says why' });
    });
  });
  await new Promise<void>((listening, failed) => {
    server.once('error', failed);
    server.listen(options.port, options.host, () => {
      server.off('error', failed);
      listening();
    });
  });
  return {
    url: urlOf(server.address() as AddressInfo),
    close: () =>
      new Promise<void>((closed, failed) => {
        server.close((error) => (error ? failed(error) : closed()));
        server.closeAllConnections();
      }),
  };
}
