// The fake provider: an OpenAI-compatible upstream for load tests and fault injection.
//
// Plain node:http with a cheap hot path: per-request state lives on subclassed IncomingMessage /
// ServerResponse objects, listeners and timer callbacks are module-level functions (no per-request
// closures), static bodies are pre-encoded. Streams respect backpressure: when res.write() returns
// false nothing more is written until 'drain'.

import { createServer, type IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  type Behaviour,
  type BehaviourError,
  parseBehaviour,
  resolveDefaults,
  splitBehaviourPath,
} from './behaviour.ts';

export type FakeRequestRecord = {
  method: string;
  /** URL path without the behaviour segment and the query. */
  path: string;
  /** The request URL as received (with behaviour segment and query). */
  url: string;
  headers: IncomingHttpHeaders;
  /** Raw request body as UTF-8 text ('' when there is none). */
  body: string;
};

export type FakeStats = {
  /** Every request received (counted on arrival, whatever happens next). */
  requests: number;
  /** Requests by URL path without the behaviour segment and the query. */
  byPath: Record<string, number>;
  /** Requests by behaviour key: the tag when one is set, else the path's behaviour segment ('' for none). */
  byBehaviour: Record<string, number>;
  /** Requests being handled right now. */
  inFlight: number;
  maxInFlight: number;
  /** Responses the fake finished writing (any status, including injected errors). */
  completed: number;
  /** Responses closed (client went away, or close()) before the fake finished writing. */
  aborted: number;
  /** Responses the fake cut off on purpose (disconnect-after). */
  disconnected: number;
  /** Responses that entered a stall (stall-after); they end up in `aborted` when the connection closes. */
  stalled: number;
  /** Responses currently paused because res.write() returned false (waiting for 'drain'). */
  waitingForDrain: number;
  /** Response body bytes handed to the socket layer. */
  bytesWritten: number;
  lastRequest?: FakeRequestRecord;
};

export type FakeProvider = {
  /** `http://127.0.0.1:PORT` */
  origin: string;
  /** `origin + '/v1'` */
  baseUrl: string;
  port: number;
  /** Live counters (the same object for the provider's lifetime; resetStats() zeroes it in place). */
  stats: FakeStats;
  resetStats(): void;
  /** Stops listening and destroys every open connection (stalled ones included). */
  close(): Promise<void>;
};

export type FakeProviderOptions = {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Behaviour used when neither headers nor the path say otherwise. */
  defaults?: Partial<Behaviour>;
};

type Ctx = { stats: FakeStats; defaults: Behaviour; seq: number; failCounts: Map<string, number> };

// Response phases.
const ACTIVE = 0;
const DONE = 1;
const DISCONNECTED = 2;
const ABORTED = 3;

// Stream kinds.
const CHAT = 1;
const TEXT = 2;

const NO_STOP = -1;
const STALL = 1;
const DISCONNECT = 2;

const JSON_TYPE = 'application/json';
const SSE_TYPE = 'text/event-stream; charset=utf-8';
const EMPTY: Buffer[] = [];

class FakeRequest extends IncomingMessage {
  fkRes: FakeResponse | undefined = undefined;
  fkChunks: Buffer[] = EMPTY;
}

class FakeResponse extends ServerResponse<FakeRequest> {
  fkCtx: Ctx | undefined = undefined;
  fkPhase = ACTIVE;
  fkBehaviour: Behaviour | undefined = undefined;
  fkError: BehaviourError | undefined = undefined;
  fkPath = '';
  fkQuery = '';
  fkBody = '';
  fkTimer: NodeJS.Timeout | undefined = undefined;
  fkWaitingDrain = false;
  // Streaming state.
  fkKind = CHAT;
  fkIndex = 0;
  fkCount = 0;
  fkGap = 0;
  fkChunkSize: number | undefined = undefined;
  fkStopAt = NO_STOP;
  fkStopMode = 0;
  fkPrefix = '';
  fkKey = '';
  fkTail = '';
}

// ---------------------------------------------------------------------------------------------------
// Request intake

function handle(ctx: Ctx, req: FakeRequest, res: FakeResponse): void {
  const stats = ctx.stats;
  stats.requests++;
  if (++stats.inFlight > stats.maxInFlight) stats.maxInFlight = stats.inFlight;

  const split = splitBehaviourPath(req.url ?? '/');
  const rest = split.rest;
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;

  res.fkCtx = ctx;
  res.fkPath = path;
  res.fkQuery = q === -1 ? '' : rest.slice(q + 1);
  const parsed = parseBehaviour(req.headers, split.behaviourText, ctx.defaults);
  res.fkBehaviour = parsed.behaviour ?? ctx.defaults;
  res.fkError = parsed.error;
  const tag = res.fkBehaviour.tag;
  const key = tag ?? split.behaviourText ?? '';
  res.fkKey = key;
  stats.byBehaviour[key] = (stats.byBehaviour[key] ?? 0) + 1;
  res.on('close', onResClose);

  req.fkRes = res;
  req.on('data', onReqData);
  req.on('end', onReqEnd);
}

function onReqData(this: FakeRequest, chunk: Buffer): void {
  if (this.fkChunks === EMPTY) this.fkChunks = [chunk];
  else this.fkChunks.push(chunk);
}

function onReqEnd(this: FakeRequest): void {
  const res = this.fkRes!;
  const chunks = this.fkChunks;
  this.fkChunks = EMPTY;
  this.fkRes = undefined;
  const body =
    chunks.length === 0 ? '' : chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString();
  res.fkBody = body;
  const ctx = res.fkCtx!;
  ctx.stats.lastRequest = {
    method: this.method ?? '',
    path: res.fkPath,
    url: this.url ?? '',
    headers: this.headers,
    body,
  };
  if (res.fkPhase !== ACTIVE) return;
  if (res.fkError !== undefined) {
    const e = res.fkError;
    sendError(res, 400, errorBody(e.message, 'invalid_request_error', e.param, 'invalid_fake_behaviour'));
    return;
  }
  const delay = res.fkBehaviour!.headersDelayMs;
  if (delay > 0) res.fkTimer = setTimeout(respond, delay, res);
  else respond(res);
}

function onResClose(this: FakeResponse): void {
  const stats = this.fkCtx!.stats;
  if (this.fkTimer !== undefined) {
    clearTimeout(this.fkTimer);
    this.fkTimer = undefined;
  }
  if (this.fkWaitingDrain) {
    this.fkWaitingDrain = false;
    stats.waitingForDrain--;
  }
  if (this.fkPhase === ACTIVE) {
    this.fkPhase = ABORTED;
    stats.aborted++;
    stats.inFlight--;
  }
}

// ---------------------------------------------------------------------------------------------------
// Routing

function respond(res: FakeResponse): void {
  res.fkTimer = undefined;
  if (res.fkPhase !== ACTIVE) return;
  const b = res.fkBehaviour!;
  if (b.status !== undefined && (b.status < 200 || b.status > 299)) {
    sendError(
      res,
      b.status,
      b.errorCode === undefined ? injectedError(b.status) : codedError(b.status, b.errorCode),
    );
    return;
  }
  if (b.failFirst !== undefined) {
    const counts = res.fkCtx!.failCounts;
    const failed = counts.get(res.fkKey) ?? 0;
    if (failed < b.failFirst) {
      counts.set(res.fkKey, failed + 1);
      sendError(
        res,
        b.failStatus,
        b.errorCode === undefined ? injectedError(b.failStatus) : codedError(b.failStatus, b.errorCode),
      );
      return;
    }
  }
  if (b.failRate > 0 && Math.random() < b.failRate) {
    sendError(res, b.failStatus, randomFailure(b.failStatus));
    return;
  }
  const post = res.req.method === 'POST';
  const path = res.fkPath;
  if (post && path === '/v1/chat/completions') completion(res, CHAT);
  else if (post && path === '/v1/completions') completion(res, TEXT);
  else if (post && path === '/v1/embeddings') embeddings(res);
  else if (path === '/v1/models' && res.req.method === 'GET')
    sendBody(res, b.status ?? 200, JSON_TYPE, MODELS_BODY);
  else echo(res);
}

function echo(res: FakeResponse): void {
  const req = res.req;
  const body = JSON.stringify({
    object: 'fake.echo',
    method: req.method,
    path: res.fkPath,
    query: res.fkQuery,
    authorization: req.headers.authorization ?? null,
  });
  sendBody(res, res.fkBehaviour!.status ?? 200, JSON_TYPE, body);
}

type JsonObject = Record<string, unknown>;

/** The request body as a JSON object, or undefined after answering 400. */
function jsonBody(res: FakeResponse): JsonObject | undefined {
  let json: unknown;
  try {
    json = JSON.parse(res.fkBody);
  } catch (err) {
    const message = `fake provider: request body is not valid JSON: ${(err as Error).message}`;
    sendError(res, 400, errorBody(message, 'invalid_request_error', null, 'invalid_json'));
    return undefined;
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    const message = 'fake provider: request body must be a JSON object';
    sendError(res, 400, errorBody(message, 'invalid_request_error', null, 'invalid_json'));
    return undefined;
  }
  return json as JsonObject;
}

// ---------------------------------------------------------------------------------------------------
// Completions (chat and legacy), streaming and not

function completion(res: FakeResponse, kind: number): void {
  const body = jsonBody(res);
  if (body === undefined) return;
  const ctx = res.fkCtx!;
  const b = res.fkBehaviour!;
  const status = b.status ?? 200;
  const model = typeof body.model === 'string' ? body.model : 'fake-model';
  const promptTokens = kind === CHAT ? messageTokens(body.messages) : promptTokensOf(body.prompt);
  const id = (kind === CHAT ? 'chatcmpl-fake-' : 'cmpl-fake-') + ++ctx.seq;
  const created = Math.floor(Date.now() / 1000);
  const count = b.chunks;

  let stopAt = NO_STOP;
  let stopMode = 0;
  if (b.disconnectAfter !== undefined && b.disconnectAfter < count) {
    stopAt = b.disconnectAfter;
    stopMode = DISCONNECT;
  }
  if (b.stallAfter !== undefined && b.stallAfter < count && (stopAt === NO_STOP || b.stallAfter < stopAt)) {
    stopAt = b.stallAfter;
    stopMode = STALL;
  }

  const usage = b.usage
    ? { prompt_tokens: promptTokens, completion_tokens: count, total_tokens: promptTokens + count }
    : undefined;

  if (body.stream !== true) {
    if (stopAt !== NO_STOP) {
      // The body is produced in one piece: send headers, then stall or cut the connection.
      res.writeHead(status, headerList(res, JSON_TYPE, undefined));
      res.fkStopMode = stopMode;
      stopStream(res);
      return;
    }
    let text = '';
    for (let i = 0; i < count; i++) text += content(i, b.chunkSize);
    const out =
      kind === CHAT
        ? {
            id,
            object: 'chat.completion',
            created,
            model,
            choices: [
              {
                index: 0,
                message: { role: 'assistant', content: text, refusal: null },
                logprobs: null,
                finish_reason: 'stop',
              },
            ],
            usage,
          }
        : {
            id,
            object: 'text_completion',
            created,
            model,
            choices: [{ text, index: 0, logprobs: null, finish_reason: 'stop' }],
            usage,
          };
    sendBody(res, status, JSON_TYPE, JSON.stringify(out));
    return;
  }

  const modelJson = JSON.stringify(model);
  const object = kind === CHAT ? 'chat.completion.chunk' : 'text_completion';
  const head = `data: {"id":"${id}","object":"${object}","created":${created},"model":${modelJson},"choices":[{`;
  let tail: string;
  if (kind === CHAT) {
    res.fkPrefix = head + '"index":0,"delta":{';
    tail = res.fkPrefix + '},"logprobs":null,"finish_reason":"stop"}]}\n\n';
  } else {
    res.fkPrefix = head + '"text":"';
    tail = res.fkPrefix + '","index":0,"logprobs":null,"finish_reason":"stop"}]}\n\n';
  }
  const streamOptions = body.stream_options as JsonObject | null | undefined;
  if (usage !== undefined && streamOptions?.include_usage === true) {
    tail += `data: ${JSON.stringify({ id, object, created, model, choices: [], usage })}\n\n`;
  }
  res.fkTail = tail + 'data: [DONE]\n\n';
  res.fkKind = kind;
  res.fkIndex = 0;
  res.fkCount = count;
  res.fkGap = b.chunkGapMs;
  res.fkChunkSize = b.chunkSize;
  res.fkStopAt = stopAt;
  res.fkStopMode = stopMode;
  res.writeHead(status, headerList(res, SSE_TYPE, undefined));
  if (b.firstChunkDelayMs > 0) {
    res.flushHeaders();
    res.fkTimer = setTimeout(pump, b.firstChunkDelayMs, res);
  } else {
    pump(res);
  }
}

/** Writes chunks from res.fkIndex on until done, a gap, a stop, or backpressure. */
function pump(res: FakeResponse): void {
  res.fkTimer = undefined;
  if (res.fkPhase !== ACTIVE) return;
  const count = res.fkCount;
  const stopAt = res.fkStopAt;
  const gap = res.fkGap;
  const stats = res.fkCtx!.stats;
  for (;;) {
    const i = res.fkIndex;
    if (i === stopAt) {
      stopStream(res);
      return;
    }
    if (i === count) {
      const tail = res.fkTail;
      stats.bytesWritten += Buffer.byteLength(tail);
      finish(res);
      res.end(tail);
      return;
    }
    const c = content(i, res.fkChunkSize);
    const line =
      res.fkKind === CHAT
        ? res.fkPrefix +
          (i === 0 ? '"role":"assistant","content":"' : '"content":"') +
          c +
          '"},"logprobs":null,"finish_reason":null}]}\n\n'
        : res.fkPrefix + c + '","index":0,"logprobs":null,"finish_reason":null}]}\n\n';
    stats.bytesWritten += Buffer.byteLength(line);
    res.fkIndex = i + 1;
    if (!res.write(line)) {
      res.fkWaitingDrain = true;
      stats.waitingForDrain++;
      res.once('drain', onDrain);
      return;
    }
    if (gap > 0 && i + 1 < count && i + 1 !== stopAt) {
      res.fkTimer = setTimeout(pump, gap, res);
      return;
    }
  }
}

function onDrain(this: FakeResponse): void {
  if (!this.fkWaitingDrain) return;
  this.fkWaitingDrain = false;
  this.fkCtx!.stats.waitingForDrain--;
  const i = this.fkIndex;
  if (this.fkGap > 0 && i < this.fkCount && i !== this.fkStopAt)
    this.fkTimer = setTimeout(pump, this.fkGap, this);
  else pump(this);
}

/** stall-after / disconnect-after reached: headers are out, no more content comes. */
function stopStream(res: FakeResponse): void {
  res.flushHeaders();
  const stats = res.fkCtx!.stats;
  if (res.fkStopMode === STALL) {
    stats.stalled++;
    return; // stays ACTIVE until the connection closes (counted as aborted then)
  }
  res.fkPhase = DISCONNECTED;
  stats.disconnected++;
  stats.inFlight--;
  const socket = res.socket;
  if (socket === null) return;
  // end() flushes what was written (so the client sees exactly N chunks), then the socket is destroyed
  // without the response ever being terminated.
  socket.once('finish', destroySocket);
  socket.end();
}

function destroySocket(this: Socket): void {
  this.destroy();
}

// ---------------------------------------------------------------------------------------------------
// Embeddings

function embeddings(res: FakeResponse): void {
  const body = jsonBody(res);
  if (body === undefined) return;
  const input = body.input;
  let inputs: unknown[];
  if (typeof input === 'string') inputs = [input];
  else if (Array.isArray(input) && input.length > 0)
    inputs = input.every((x) => typeof x === 'number') ? [input] : input;
  else {
    const message = "fake provider: 'input' must be a string or a non-empty array";
    sendError(res, 400, errorBody(message, 'invalid_request_error', 'input', null));
    return;
  }
  const base64 = body.encoding_format === 'base64';
  let chars = 0;
  const data = inputs.map((item, index) => {
    const text = typeof item === 'string' ? item : JSON.stringify(item);
    chars += text.length;
    const vector = embeddingOf(text);
    return {
      object: 'embedding',
      index,
      embedding: base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector,
    };
  });
  const tokens = Math.max(1, Math.ceil(chars / 4));
  const b = res.fkBehaviour!;
  const out = {
    object: 'list',
    data,
    model: typeof body.model === 'string' ? body.model : 'fake-embedding',
    usage: b.usage ? { prompt_tokens: tokens, total_tokens: tokens } : undefined,
  };
  sendBody(res, b.status ?? 200, JSON_TYPE, JSON.stringify(out));
}

/** 8 deterministic floats in [-1, 1] derived from the text. */
function embeddingOf(text: string): number[] {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  const out: number[] = [];
  for (let k = 0; k < 8; k++) {
    h ^= h << 13;
    h ^= h >>> 17;
    h ^= h << 5;
    out.push(Math.round(((h >>> 0) / 0xffffffff) * 2e6 - 1e6) / 1e6);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Content and token counting

const WORDS: string[] = [];
for (let i = 0; i < 256; i++) WORDS.push(`tok${i} `);
const FILLER_UNIT = 'abcdefghijklmnopqrstuvwxyz ';
let filler = FILLER_UNIT;

/** Content of chunk i: a short word, or exactly `size` characters (JSON-safe, no escaping needed). */
function content(i: number, size: number | undefined): string {
  const word = i < 256 ? WORDS[i]! : `tok${i} `;
  if (size === undefined) return word;
  if (word.length >= size) return word.slice(0, size);
  const need = size - word.length;
  while (filler.length < need) filler += filler;
  return word + filler.slice(0, need);
}

function textLength(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (Array.isArray(value)) {
    let n = 0;
    for (const part of value) {
      if (typeof part === 'string') n += part.length;
      else if (typeof part === 'number') n += 4;
      else if (Array.isArray(part)) n += 4 * part.length;
      else if (part !== null && typeof part === 'object') {
        const text = (part as JsonObject).text;
        if (typeof text === 'string') n += text.length;
      }
    }
    return n;
  }
  return 0;
}

function messageTokens(messages: unknown): number {
  let chars = 0;
  if (Array.isArray(messages)) {
    for (const m of messages) {
      if (m !== null && typeof m === 'object') chars += textLength((m as JsonObject).content);
    }
  }
  return Math.max(1, Math.ceil(chars / 4));
}

function promptTokensOf(prompt: unknown): number {
  return Math.max(1, Math.ceil(textLength(prompt) / 4));
}

// ---------------------------------------------------------------------------------------------------
// Writing responses

function finish(res: FakeResponse): void {
  res.fkPhase = DONE;
  const stats = res.fkCtx!.stats;
  stats.completed++;
  stats.inFlight--;
}

function headerList(res: FakeResponse, type: string, length: number | undefined): (string | number)[] {
  const b = res.fkBehaviour!;
  const h: (string | number)[] =
    type === SSE_TYPE ? ['content-type', type, 'cache-control', 'no-cache'] : ['content-type', type];
  if (length !== undefined) h.push('content-length', length);
  if (b.retryAfter !== undefined) h.push('retry-after', b.retryAfter);
  if (b.retryAfterMs !== undefined) h.push('retry-after-ms', b.retryAfterMs);
  return h;
}

function sendBody(res: FakeResponse, status: number, type: string, body: string | Buffer): void {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  res.fkCtx!.stats.bytesWritten += length;
  finish(res);
  res.writeHead(status, headerList(res, type, length));
  res.end(body);
}

function sendError(res: FakeResponse, status: number, body: string | Buffer): void {
  sendBody(res, status, JSON_TYPE, body);
}

function errorBody(message: string, type: string, param: string | null, code: string | null): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

/** OpenAI-like error `type` and `code` for a status. */
function errorKind(status: number): [string, string | null] {
  switch (status) {
    case 401:
      return ['invalid_request_error', 'invalid_api_key'];
    case 403:
      return ['invalid_request_error', 'permission_denied'];
    case 404:
      return ['invalid_request_error', 'not_found'];
    case 408:
      return ['invalid_request_error', 'timeout'];
    case 413:
      return ['invalid_request_error', 'request_too_large'];
    case 429:
      return ['requests', 'rate_limit_exceeded'];
  }
  if (status >= 400 && status < 500) return ['invalid_request_error', null];
  if (status >= 500) return ['server_error', null];
  return ['fake_status', null];
}

const injectedCache = new Map<number, Buffer>();
const failureCache = new Map<number, Buffer>();

function injectedError(status: number): Buffer {
  let body = injectedCache.get(status);
  if (body === undefined) {
    const [type, code] = errorKind(status);
    body = Buffer.from(errorBody(`fake provider: injected status ${status}`, type, null, code));
    injectedCache.set(status, body);
  }
  return body;
}

function codedError(status: number, code: string): string {
  return errorBody(`fake provider: injected status ${status} (${code})`, errorKind(status)[0], null, code);
}

function randomFailure(status: number): Buffer {
  let body = failureCache.get(status);
  if (body === undefined) {
    const [type, code] = errorKind(status);
    body = Buffer.from(
      errorBody(`fake provider: random failure (fail-rate), status ${status}`, type, null, code),
    );
    failureCache.set(status, body);
  }
  return body;
}

const MODELS_BODY = Buffer.from(
  JSON.stringify({
    object: 'list',
    data: [
      { id: 'fake-model', object: 'model', created: 1_700_000_000, owned_by: 'sluice-fake-provider' },
      { id: 'fake-model-large', object: 'model', created: 1_700_000_000, owned_by: 'sluice-fake-provider' },
      { id: 'fake-embedding', object: 'model', created: 1_700_000_000, owned_by: 'sluice-fake-provider' },
    ],
  }),
);

// ---------------------------------------------------------------------------------------------------
// Lifecycle

function emptyStats(): FakeStats {
  return {
    requests: 0,
    byPath: {},
    byBehaviour: {},
    inFlight: 0,
    maxInFlight: 0,
    completed: 0,
    aborted: 0,
    disconnected: 0,
    stalled: 0,
    waitingForDrain: 0,
    bytesWritten: 0,
  };
}

export async function startFakeProvider(opts: FakeProviderOptions = {}): Promise<FakeProvider> {
  const host = opts.host ?? '127.0.0.1';
  const ctx: Ctx = {
    stats: emptyStats(),
    defaults: resolveDefaults(opts.defaults),
    seq: 0,
    failCounts: new Map(),
  };
  const server = createServer<typeof FakeRequest, typeof FakeResponse>(
    { IncomingMessage: FakeRequest, ServerResponse: FakeResponse },
    (req, res) => handle(ctx, req, res),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const origin = `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    origin,
    baseUrl: `${origin}/v1`,
    port,
    stats: ctx.stats,
    resetStats() {
      const s = ctx.stats;
      s.requests = 0;
      s.byPath = {};
      s.byBehaviour = {};
      ctx.failCounts.clear();
      s.maxInFlight = s.inFlight;
      s.completed = 0;
      s.aborted = 0;
      s.disconnected = 0;
      s.stalled = 0;
      s.bytesWritten = 0;
      s.lastRequest = undefined;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
