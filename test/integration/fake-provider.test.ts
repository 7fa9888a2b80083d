import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { type FakeProvider, startFakeProvider } from '../../src/fake-provider/server.ts';

const T = { timeout: 15_000 };

type Usage = { prompt_tokens: number; completion_tokens?: number; total_tokens: number };
type StreamEvent = {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: {
    index: number;
    delta?: { role?: string; content?: string };
    text?: string;
    logprobs: null;
    finish_reason: string | null;
  }[];
  usage?: Usage;
};
type ChatCompletion = {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: { index: number; message: { role: string; content: string }; finish_reason: string }[];
  usage?: Usage;
};
type ErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } };

const agent = new Agent({ keepAliveTimeout: 2_000 });
after(() => agent.destroy());

type Call = {
  path: string;
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
};

function call(fake: FakeProvider, c: Call) {
  const method = c.method ?? (c.body === undefined ? 'GET' : 'POST');
  const body =
    c.body === undefined ? undefined : typeof c.body === 'string' ? c.body : JSON.stringify(c.body);
  return request(fake.origin + c.path, {
    method: method as 'GET',
    headers: { 'content-type': 'application/json', ...c.headers },
    body,
    dispatcher: agent,
    signal: c.signal,
  });
}

async function json<R>(
  fake: FakeProvider,
  c: Call,
): Promise<{ status: number; headers: Record<string, unknown>; body: R }> {
  const res = await call(fake, c);
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as R };
}

/** Complete SSE events in `text` (a trailing partial event is ignored). */
function sse(text: string): { events: StreamEvent[]; done: boolean } {
  const blocks = text.split('\n\n');
  blocks.pop();
  const events: StreamEvent[] = [];
  let done = false;
  for (const block of blocks) {
    assert.ok(block.startsWith('data: '), `SSE block ${JSON.stringify(block.slice(0, 40))}`);
    const data = block.slice(6);
    if (data === '[DONE]') done = true;
    else {
      assert.equal(done, false, 'nothing after [DONE]');
      events.push(JSON.parse(data));
    }
  }
  return { events, done };
}

function contents(events: StreamEvent[]): string[] {
  return events
    .filter((e) => e.choices[0]?.finish_reason === null)
    .map((e) => e.choices[0]?.delta?.content ?? '');
}

async function stream(
  fake: FakeProvider,
  c: Call,
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await call(fake, c);
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function waitFor(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const CHAT = '/v1/chat/completions';
const messages = [{ role: 'user', content: 'hello world' }]; // 11 chars -> 3 prompt tokens

describe('fake provider endpoints', () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await startFakeProvider();
  });
  after(() => fake.close());

  it('exposes origin, baseUrl and port', T, () => {
    assert.match(fake.origin, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(fake.baseUrl, `${fake.origin}/v1`);
    assert.equal(fake.origin, `http://127.0.0.1:${fake.port}`);
    assert.ok(fake.port > 0);
  });

  it('answers a non-streaming chat completion', T, async () => {
    const r = await json<ChatCompletion>(fake, { path: CHAT, body: { model: 'gpt-test', messages } });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.match(r.body.id, /^chatcmpl-/);
    assert.equal(r.body.object, 'chat.completion');
    assert.equal(r.body.model, 'gpt-test');
    assert.ok(Math.abs(r.body.created - Date.now() / 1000) < 60);
    assert.equal(r.body.choices.length, 1);
    assert.equal(r.body.choices[0]?.index, 0);
    assert.equal(r.body.choices[0]?.finish_reason, 'stop');
    assert.deepEqual(r.body.choices[0]?.message, {
      role: 'assistant',
      content: 'tok0 tok1 tok2 tok3 tok4 ',
      refusal: null,
    });
    assert.deepEqual(r.body.usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
  });

  it('streams a chat completion as OpenAI SSE chunks', T, async () => {
    const r = await stream(fake, { path: CHAT, body: { model: 'gpt-test', messages, stream: true } });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
    const { events, done } = sse(r.text);
    assert.equal(done, true);
    assert.equal(events.length, 6, '5 content chunks + the finish chunk, no usage chunk');
    const id = events[0]?.id;
    assert.match(id ?? '', /^chatcmpl-/);
    for (const e of events) {
      assert.equal(e.id, id);
      assert.equal(e.object, 'chat.completion.chunk');
      assert.equal(e.model, 'gpt-test');
      assert.equal(typeof e.created, 'number');
      assert.equal(e.usage, undefined);
    }
    assert.deepEqual(events[0]?.choices, [
      { index: 0, delta: { role: 'assistant', content: 'tok0 ' }, logprobs: null, finish_reason: null },
    ]);
    assert.deepEqual(events[1]?.choices, [
      { index: 0, delta: { content: 'tok1 ' }, logprobs: null, finish_reason: null },
    ]);
    assert.deepEqual(contents(events), ['tok0 ', 'tok1 ', 'tok2 ', 'tok3 ', 'tok4 ']);
    assert.deepEqual(events[5]?.choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]);
  });

  it('adds a usage chunk when stream_options.include_usage is true', T, async () => {
    const body = { model: 'm', messages, stream: true, stream_options: { include_usage: true } };
    const { events, done } = sse((await stream(fake, { path: CHAT, body })).text);
    assert.equal(done, true);
    assert.equal(events.length, 7);
    const last = events[6]!;
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
    assert.equal(last.id, events[0]?.id);
  });

  it('usage=false drops usage from streams and from non-streaming responses', T, async () => {
    const headers = { 'x-fake-usage': 'false' };
    const body = { model: 'm', messages, stream: true, stream_options: { include_usage: true } };
    const { events } = sse((await stream(fake, { path: CHAT, body, headers })).text);
    assert.equal(events.length, 6);
    assert.ok(events.every((e) => e.usage === undefined));
    const r = await json<ChatCompletion>(fake, { path: CHAT, body: { model: 'm', messages }, headers });
    assert.equal(r.status, 200);
    assert.equal('usage' in r.body, false);
  });

  it('answers legacy completions, streaming and not', T, async () => {
    const r = await json<{ object: string; model: string; choices: { text: string }[]; usage: Usage }>(fake, {
      path: '/v1/completions',
      body: { model: 'davinci', prompt: 'abcdefgh', max_tokens: 5 },
      headers: { 'x-fake-chunks': '3' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.object, 'text_completion');
    assert.equal(r.body.model, 'davinci');
    assert.equal(r.body.choices[0]?.text, 'tok0 tok1 tok2 ');
    assert.deepEqual(r.body.usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });

    const s = await stream(fake, {
      path: '/v1/completions',
      body: { model: 'davinci', prompt: ['abcd'], stream: true, stream_options: { include_usage: true } },
      headers: { 'x-fake-chunks': '2' },
    });
    const { events, done } = sse(s.text);
    assert.equal(done, true);
    assert.deepEqual(
      events.map((e) => [e.object, e.choices[0]?.text, e.choices[0]?.finish_reason]),
      [
        ['text_completion', 'tok0 ', null],
        ['text_completion', 'tok1 ', null],
        ['text_completion', '', 'stop'],
        ['text_completion', undefined, undefined],
      ],
    );
    assert.deepEqual(events[3]?.usage, { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
  });

  it('answers embeddings for a string, an array, and base64', T, async () => {
    type Embeddings = {
      object: string;
      model: string;
      data: { object: string; index: number; embedding: number[] | string }[];
      usage: Usage;
    };
    const one = await json<Embeddings>(fake, {
      path: '/v1/embeddings',
      body: { model: 'emb', input: 'hello' },
    });
    assert.equal(one.status, 200);
    assert.equal(one.body.object, 'list');
    assert.equal(one.body.model, 'emb');
    assert.equal(one.body.data.length, 1);
    const vector = one.body.data[0]?.embedding as number[];
    assert.equal(vector.length, 8);
    assert.ok(vector.every((x) => typeof x === 'number' && x >= -1 && x <= 1));
    assert.deepEqual(one.body.usage, { prompt_tokens: 2, total_tokens: 2 });

    const many = await json<Embeddings>(fake, {
      path: '/v1/embeddings',
      body: { input: ['hello', 'other', 'x'] },
    });
    assert.deepEqual(
      many.body.data.map((d) => [d.object, d.index, (d.embedding as number[]).length]),
      [
        ['embedding', 0, 8],
        ['embedding', 1, 8],
        ['embedding', 2, 8],
      ],
    );
    assert.deepEqual(many.body.data[0]?.embedding, vector, 'deterministic per input');
    assert.notDeepEqual(many.body.data[1]?.embedding, vector);

    const tokens = await json<Embeddings>(fake, { path: '/v1/embeddings', body: { input: [1, 2, 3] } });
    assert.equal(tokens.body.data.length, 1, 'an array of token ids is one input');

    const b64 = await json<Embeddings>(fake, {
      path: '/v1/embeddings',
      body: { input: 'hello', encoding_format: 'base64' },
    });
    const raw = Buffer.from(b64.body.data[0]?.embedding as string, 'base64');
    const floats = Array.from(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4));
    assert.equal(floats.length, 8);
    for (const [i, f] of floats.entries()) assert.ok(Math.abs(f - vector[i]!) < 1e-6);

    const missing = await json<ErrorBody>(fake, { path: '/v1/embeddings', body: { model: 'emb' } });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.param, 'input');
    assert.equal(missing.body.error.type, 'invalid_request_error');
  });

  it('lists models', T, async () => {
    const r = await json<{ object: string; data: { id: string; object: string }[] }>(fake, {
      path: '/v1/models',
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.object, 'list');
    assert.ok(r.body.data.length >= 1);
    assert.ok(r.body.data.every((m) => m.object === 'model' && typeof m.id === 'string'));
    assert.ok(r.body.data.some((m) => m.id === 'fake-model'));
  });

  it('echoes any other path or method, with the Authorization header', T, async () => {
    const r = await json(fake, {
      path: '/fake/chunks=2/v1/files/abc?purpose=x&y=1',
      method: 'DELETE',
      headers: { authorization: 'Bearer upstream-key' },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {
      object: 'fake.echo',
      method: 'DELETE',
      path: '/v1/files/abc',
      query: 'purpose=x&y=1',
      authorization: 'Bearer upstream-key',
    });
    const get = await json(fake, { path: '/health' });
    assert.deepEqual(get.body, {
      object: 'fake.echo',
      method: 'GET',
      path: '/health',
      query: '',
      authorization: null,
    });
    const wrongMethod = await json(fake, { path: CHAT });
    assert.deepEqual(wrongMethod.body, {
      object: 'fake.echo',
      method: 'GET',
      path: CHAT,
      query: '',
      authorization: null,
    });
  });

  it('answers 400 for a body that is not JSON or not an object', T, async () => {
    for (const body of ['{"model":', '[1,2]', '']) {
      const r = await json<ErrorBody>(fake, { path: CHAT, method: 'POST', body });
      assert.equal(r.status, 400, `body ${JSON.stringify(body)}`);
      assert.equal(r.body.error.type, 'invalid_request_error');
      assert.equal(r.body.error.code, 'invalid_json');
      assert.match(r.body.error.message, /^fake provider: request body/);
    }
  });
});

describe('fake provider behaviours', () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await startFakeProvider();
  });
  after(() => fake.close());

  it('status injects an OpenAI-shaped error per status', T, async () => {
    const cases: [number, string, string | null][] = [
      [400, 'invalid_request_error', null],
      [401, 'invalid_request_error', 'invalid_api_key'],
      [404, 'invalid_request_error', 'not_found'],
      [429, 'requests', 'rate_limit_exceeded'],
      [500, 'server_error', null],
      [503, 'server_error', null],
    ];
    for (const [status, type, code] of cases) {
      const r = await json<ErrorBody>(fake, {
        path: CHAT,
        body: { model: 'm', messages, stream: true },
        headers: { 'x-fake-status': String(status) },
      });
      assert.equal(r.status, status);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assert.deepEqual(r.body, {
        error: { message: `fake provider: injected status ${status}`, type, param: null, code },
      });
    }
    const models = await json<ErrorBody>(fake, { path: '/v1/models', headers: { 'x-fake-status': '502' } });
    assert.equal(models.status, 502, 'applies to every endpoint');
  });

  it('a 2xx status gives a normal response with that status', T, async () => {
    const r = await json<ChatCompletion>(fake, {
      path: CHAT,
      body: { model: 'm', messages },
      headers: { 'x-fake-status': '201' },
    });
    assert.equal(r.status, 201);
    assert.equal(r.body.object, 'chat.completion');
  });

  it('retry-after and retry-after-ms are sent as given, with any status', T, async () => {
    const headers = { 'x-fake-status': '429', 'x-fake-retry-after': '1.5', 'x-fake-retry-after-ms': '1500' };
    const r = await json<ErrorBody>(fake, { path: CHAT, body: { messages }, headers });
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '1.5');
    assert.equal(r.headers['retry-after-ms'], '1500');
    const ok = await stream(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-retry-after': '7' },
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['retry-after'], '7');
    assert.equal(ok.headers['retry-after-ms'], undefined);
    const plain = await call(fake, { path: '/v1/models' });
    await plain.body.dump();
    assert.equal(plain.headers['retry-after'], undefined);
  });

  it('behaviour in the path segment applies, and headers override it', T, async () => {
    const viaPath = await json<ErrorBody>(fake, {
      path: `/fake/status=503,retry-after=2${CHAT}`,
      body: { messages },
    });
    assert.equal(viaPath.status, 503);
    assert.equal(viaPath.headers['retry-after'], '2');
    assert.equal(viaPath.body.error.message, 'fake provider: injected status 503');

    const overridden = await json<ChatCompletion>(fake, {
      path: `/fake/status=503,chunks=2${CHAT}`,
      body: { messages },
      headers: { 'x-fake-status': '200', 'x-fake-chunks': '3' },
    });
    assert.equal(overridden.status, 200);
    assert.equal(overridden.body.choices[0]?.message.content, 'tok0 tok1 tok2 ');

    const pathOnly = await json<ChatCompletion>(fake, { path: `/fake/chunks=2${CHAT}`, body: { messages } });
    assert.equal(pathOnly.body.choices[0]?.message.content, 'tok0 tok1 ');
    assert.equal(pathOnly.body.usage?.completion_tokens, 2);
  });

  it('a bad behaviour value answers 400 naming the header (or path entry)', T, async () => {
    const r = await json<ErrorBody>(fake, {
      path: CHAT,
      body: { messages },
      headers: { 'x-fake-chunks': 'lots', 'x-fake-status': '503' },
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.type, 'invalid_request_error');
    assert.equal(r.body.error.param, 'x-fake-chunks');
    assert.equal(r.body.error.code, 'invalid_fake_behaviour');
    assert.match(r.body.error.message, /x-fake-chunks/);
    assert.match(r.body.error.message, /"lots"/);

    const unknown = await json<ErrorBody>(fake, { path: '/v1/models', headers: { 'x-fake-stall': '1' } });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.param, 'x-fake-stall');

    const viaPath = await json<ErrorBody>(fake, { path: `/fake/fail-rate=2${CHAT}`, body: { messages } });
    assert.equal(viaPath.status, 400);
    assert.equal(viaPath.body.error.param, '/fake/fail-rate');
  });

  it('chunks and chunk-size shape the content', T, async () => {
    const headers = { 'x-fake-chunks': '4', 'x-fake-chunk-size': '100' };
    const { events, done } = sse(
      (await stream(fake, { path: CHAT, body: { messages, stream: true }, headers })).text,
    );
    assert.equal(done, true);
    const parts = contents(events);
    assert.equal(parts.length, 4);
    parts.forEach((p, i) => {
      assert.equal(p.length, 100);
      assert.ok(p.startsWith(`tok${i} `));
    });
    const r = await json<ChatCompletion>(fake, { path: CHAT, body: { messages }, headers });
    assert.equal(r.body.choices[0]?.message.content, parts.join(''));
    assert.equal(r.body.usage?.completion_tokens, 4);
    const tiny = await json<ChatCompletion>(fake, {
      path: CHAT,
      body: { messages },
      headers: { 'x-fake-chunks': '3', 'x-fake-chunk-size': '2' },
    });
    assert.equal(tiny.body.choices[0]?.message.content, 'tototo');
  });

  it('headers-delay-ms delays the response headers', T, async () => {
    const t0 = performance.now();
    const r = await call(fake, { path: '/v1/models', headers: { 'x-fake-headers-delay-ms': '250' } });
    const elapsed = performance.now() - t0;
    await r.body.dump();
    assert.equal(r.statusCode, 200);
    assert.ok(elapsed >= 245, `headers after ${elapsed} ms`);
    const t1 = performance.now();
    const e = await call(fake, {
      path: CHAT,
      body: { messages },
      headers: { 'x-fake-headers-delay-ms': '200', 'x-fake-status': '503' },
    });
    await e.body.dump();
    assert.equal(e.statusCode, 503);
    assert.ok(performance.now() - t1 >= 195, 'also delays injected errors');
  });

  it('first-chunk-delay-ms sends headers at once and delays the first chunk', T, async () => {
    const t0 = performance.now();
    const r = await call(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-first-chunk-delay-ms': '600' },
    });
    const headersAt = performance.now() - t0;
    assert.equal(r.statusCode, 200);
    let firstAt = -1;
    let text = '';
    for await (const chunk of r.body) {
      if (firstAt < 0) firstAt = performance.now() - t0;
      text += chunk;
    }
    assert.ok(headersAt < 400, `headers after ${headersAt} ms`);
    assert.ok(firstAt >= 595, `first chunk after ${firstAt} ms`);
    assert.equal(sse(text).done, true);
  });

  it('chunk-gap-ms spaces the chunks', T, async () => {
    const t0 = performance.now();
    const r = await call(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-chunks': '4', 'x-fake-chunk-gap-ms': '100' },
    });
    const arrivals: number[] = [];
    let text = '';
    for await (const chunk of r.body) {
      const before = sse(text).events.length;
      text += chunk;
      const now = sse(text).events.length;
      for (let i = before; i < now; i++) arrivals.push(performance.now() - t0);
    }
    assert.equal(contents(sse(text).events).length, 4);
    assert.ok(arrivals[3]! >= 295, `4th chunk at ${arrivals[3]} ms: 3 gaps of 100 ms`);
    assert.ok(arrivals[3]! - arrivals[0]! >= 200, 'no gap before the first chunk, gaps between chunks');
  });

  it('fail-rate=1 fails every request with fail-status; fail-rate=0 never fails', T, async () => {
    for (let i = 0; i < 20; i++) {
      const r = await json<ErrorBody>(fake, {
        path: CHAT,
        body: { messages },
        headers: { 'x-fake-fail-rate': '1', 'x-fake-fail-status': '429' },
      });
      assert.equal(r.status, 429);
      assert.equal(r.body.error.type, 'requests');
      assert.equal(r.body.error.code, 'rate_limit_exceeded');
      assert.match(r.body.error.message, /fail-rate/);
    }
    const d = await json<ErrorBody>(fake, { path: '/v1/models', headers: { 'x-fake-fail-rate': '1' } });
    assert.equal(d.status, 503, 'fail-status defaults to 503');
    for (let i = 0; i < 50; i++) {
      const r = await call(fake, { path: CHAT, body: { messages }, headers: { 'x-fake-fail-rate': '0' } });
      await r.body.dump();
      assert.equal(r.statusCode, 200);
    }
  });

  it(
    'fail-first=N fails the first N requests of a behaviour, then succeeds; counted per tag, else per path segment',
    T,
    async () => {
      fake.resetStats();
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await call(fake, {
          path: `/fake/fail-first=2,fail-status=429,retry-after=1/v1/chat/completions`,
          body: { messages },
        });
        statuses.push(r.statusCode);
        if (r.statusCode === 429) assert.equal(r.headers['retry-after'], '1');
        await r.body.dump();
      }
      assert.deepEqual(statuses, [429, 429, 200, 200]);
      // Another tag is another counter.
      const tagged = await call(fake, {
        path: CHAT,
        body: { messages },
        headers: { 'x-fake-fail-first': '1', 'x-fake-tag': 'b' },
      });
      await tagged.body.dump();
      assert.equal(tagged.statusCode, 503);
      assert.equal(fake.stats.byBehaviour['fail-first=2,fail-status=429,retry-after=1'], 4);
      assert.equal(fake.stats.byBehaviour.b, 1);
    },
  );

  it('error-code sets the code of injected errors', T, async () => {
    const r = await json<ErrorBody>(fake, {
      path: CHAT,
      body: { messages },
      headers: { 'x-fake-status': '400', 'x-fake-error-code': 'context_length_exceeded' },
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'context_length_exceeded');
    assert.equal(r.body.error.type, 'invalid_request_error');
  });

  it('fail-rate=0.5 fails about half of the requests', T, async () => {
    const results = await Promise.all(
      Array.from({ length: 400 }, async () => {
        const r = await call(fake, { path: '/v1/models', headers: { 'x-fake-fail-rate': '0.5' } });
        await r.body.dump();
        return r.statusCode;
      }),
    );
    const failed = results.filter((s) => s === 503).length;
    assert.equal(results.filter((s) => s === 200).length + failed, 400);
    assert.ok(failed > 120 && failed < 280, `${failed} of 400 failed`);
  });
});

describe('fake provider stats', () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await startFakeProvider();
  });
  after(() => fake.close());

  it('counts requests, paths, completions and records the last request', T, async () => {
    fake.resetStats();
    await (await call(fake, { path: CHAT, body: { messages } })).body.dump();
    await (await call(fake, { path: CHAT, body: { messages, stream: true } })).body.dump();
    await (await call(fake, { path: '/v1/models' })).body.dump();
    await (await call(fake, { path: `/fake/status=500${CHAT}?x=1`, body: { messages } })).body.dump();
    await (await call(fake, { path: '/v1/other?y=2', headers: { 'x-fake-chunks': '0' } })).body.dump();
    await (
      await call(fake, {
        path: '/fake/chunks=1/v1/embeddings?z=3',
        body: { input: 'abc' },
        headers: { authorization: 'Bearer k' },
      })
    ).body.dump();
    const s = fake.stats;
    assert.equal(s.requests, 6);
    assert.deepEqual(s.byPath, { [CHAT]: 3, '/v1/models': 1, '/v1/other': 1, '/v1/embeddings': 1 });
    assert.equal(s.completed, 6);
    assert.equal(s.aborted, 0);
    assert.equal(s.disconnected, 0);
    assert.equal(s.inFlight, 0);
    assert.equal(s.maxInFlight, 1);
    assert.ok(s.bytesWritten > 0);
    assert.equal(s.lastRequest?.method, 'POST');
    assert.equal(s.lastRequest?.path, '/v1/embeddings');
    assert.equal(s.lastRequest?.url, '/fake/chunks=1/v1/embeddings?z=3');
    assert.equal(s.lastRequest?.headers.authorization, 'Bearer k');
    assert.deepEqual(JSON.parse(s.lastRequest?.body ?? ''), { input: 'abc' });

    fake.resetStats();
    assert.equal(fake.stats, s, 'reset in place');
    assert.deepEqual(
      { ...fake.stats },
      {
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
        lastRequest: undefined,
      },
    );
  });

  it('tracks inFlight and maxInFlight across concurrent requests', T, async () => {
    fake.resetStats();
    const pending = Array.from({ length: 5 }, () =>
      call(fake, { path: CHAT, body: { messages }, headers: { 'x-fake-headers-delay-ms': '300' } }),
    );
    await waitFor('5 in flight', () => fake.stats.inFlight === 5);
    assert.equal(fake.stats.completed, 0);
    for (const r of await Promise.all(pending)) await r.body.dump();
    assert.equal(fake.stats.inFlight, 0);
    assert.equal(fake.stats.maxInFlight, 5);
    assert.equal(fake.stats.completed, 5);
    assert.equal(fake.stats.requests, 5);
  });

  it('counts a client that goes away before the response as aborted', T, async () => {
    fake.resetStats();
    const ac = new AbortController();
    const pending = call(fake, {
      path: CHAT,
      body: { messages },
      headers: { 'x-fake-headers-delay-ms': '10000' },
      signal: ac.signal,
    });
    await waitFor('request received', () => fake.stats.inFlight === 1);
    ac.abort();
    await assert.rejects(pending);
    await waitFor('aborted', () => fake.stats.aborted === 1);
    assert.equal(fake.stats.inFlight, 0);
    assert.equal(fake.stats.completed, 0);
    assert.equal(fake.stats.requests, 1);
  });

  it('counts a client that stops reading a stream midway as aborted', T, async () => {
    fake.resetStats();
    const r = await call(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-chunks': '50', 'x-fake-chunk-gap-ms': '20' },
    });
    let text = '';
    r.body.on('data', (c: Buffer) => {
      text += c;
    });
    await waitFor('2 chunks', () => sse(text).events.length >= 2);
    r.body.destroy();
    await waitFor('aborted', () => fake.stats.aborted === 1);
    assert.equal(fake.stats.completed, 0);
    assert.equal(fake.stats.inFlight, 0);
  });
});

describe('fake provider stalls, disconnects and backpressure', () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await startFakeProvider();
  });
  after(() => fake.close());

  it('stall-after N sends N chunks, then nothing until the client aborts', T, async () => {
    fake.resetStats();
    const r = await call(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-stall-after': '2', 'x-fake-chunks': '5' },
    });
    assert.equal(r.statusCode, 200);
    let text = '';
    r.body.on('data', (c: Buffer) => {
      text += c;
    });
    await waitFor('2 chunks', () => sse(text).events.length === 2);
    await waitFor('stalled', () => fake.stats.stalled === 1);
    await sleep(300);
    assert.deepEqual(contents(sse(text).events), ['tok0 ', 'tok1 ']);
    assert.equal(sse(text).done, false);
    assert.equal(fake.stats.inFlight, 1);
    assert.equal(fake.stats.aborted, 0);
    r.body.destroy();
    await waitFor('aborted', () => fake.stats.aborted === 1);
    assert.equal(fake.stats.inFlight, 0);
    assert.equal(fake.stats.completed, 0);
  });

  it('stall-after 0 on a non-streaming request sends headers only', T, async () => {
    fake.resetStats();
    const r = await call(fake, { path: CHAT, body: { messages }, headers: { 'x-fake-stall-after': '0' } });
    assert.equal(r.statusCode, 200);
    let got = 0;
    r.body.on('data', (c: Buffer) => {
      got += c.length;
    });
    await waitFor('stalled', () => fake.stats.stalled === 1);
    await sleep(200);
    assert.equal(got, 0);
    r.body.destroy();
    await waitFor('aborted', () => fake.stats.aborted === 1);
  });

  it('stall-after >= chunks does not stall', T, async () => {
    const r = await stream(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-stall-after': '3', 'x-fake-chunks': '3' },
    });
    assert.equal(sse(r.text).done, true);
  });

  it('disconnect-after N sends N chunks, then the client sees an error', T, async () => {
    fake.resetStats();
    const r = await call(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-disconnect-after': '2', 'x-fake-chunks': '5' },
    });
    assert.equal(r.statusCode, 200);
    let text = '';
    await assert.rejects(async () => {
      for await (const chunk of r.body) text += chunk;
    });
    const { events, done } = sse(text);
    assert.deepEqual(contents(events), ['tok0 ', 'tok1 ']);
    assert.equal(events.length, 2);
    assert.equal(done, false);
    assert.equal(fake.stats.disconnected, 1);
    assert.equal(fake.stats.completed, 0);
    assert.equal(fake.stats.inFlight, 0);
    await sleep(50);
    assert.equal(fake.stats.aborted, 0, 'a disconnect by the fake is not a client abort');
  });

  it('disconnect-after 0 cuts streaming and non-streaming responses after the headers', T, async () => {
    fake.resetStats();
    const s = await call(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-disconnect-after': '0' },
    });
    assert.equal(s.statusCode, 200);
    await assert.rejects(s.body.text());
    const n = await call(fake, {
      path: '/v1/completions',
      body: { prompt: 'x' },
      headers: { 'x-fake-disconnect-after': '1' },
    });
    assert.equal(n.statusCode, 200);
    await assert.rejects(n.body.json());
    assert.equal(fake.stats.disconnected, 2);
    // The next request on a fresh connection still works.
    const ok = await json<ChatCompletion>(fake, { path: CHAT, body: { messages } });
    assert.equal(ok.status, 200);
  });

  it('a client that does not read makes the fake wait for drain with bounded writes', T, async () => {
    fake.resetStats();
    const chunks = 2000;
    const chunkSize = 16 * 1024;
    const total = chunks * chunkSize;
    const r = await call(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-chunks': String(chunks), 'x-fake-chunk-size': String(chunkSize) },
    });
    assert.equal(r.statusCode, 200);
    // Do not read the body. The fake must stop at 'drain' and stay there.
    await waitFor('the fake to wait for drain', () => fake.stats.waitingForDrain === 1);
    // Settled: unchanged over 5 checks 50 ms apart (the kernel may still grow loopback buffers
    // for a while, which lets a drain through; that is the fake working, not a leak).
    let last = -1;
    let steady = 0;
    for (let i = 0; i < 160 && steady < 5; i++) {
      await sleep(50);
      const now = fake.stats.bytesWritten;
      steady = now === last && fake.stats.waitingForDrain === 1 ? steady + 1 : 0;
      last = now;
    }
    // Sample over a window: writes stay bounded while the client does not read.
    const before = fake.stats.bytesWritten;
    await sleep(300);
    const grew = fake.stats.bytesWritten - before;
    assert.ok(grew <= 2 * 1024 * 1024, `wrote ${grew} more bytes in 300 ms to a client that reads nothing`);
    assert.equal(fake.stats.waitingForDrain, 1, 'the fake is parked on drain');
    assert.ok(before < total / 2, `wrote ${before} of ${total} bytes to a client that reads nothing`);
    assert.equal(fake.stats.completed, 0);
    r.body.destroy();
    await waitFor('aborted', () => fake.stats.aborted === 1);
    assert.equal(fake.stats.waitingForDrain, 0);
    assert.equal(fake.stats.inFlight, 0);
  });

  it('a slow reader gets the whole stream', T, async () => {
    const r = await call(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-chunks': '200', 'x-fake-chunk-size': String(16 * 1024) },
    });
    let text = '';
    for await (const chunk of r.body) text += chunk;
    const { events, done } = sse(text);
    assert.equal(done, true);
    assert.equal(contents(events).length, 200);
  });
});

describe('fake provider lifecycle', () => {
  it('defaults come from options, below path and headers', T, async (t) => {
    const fake = await startFakeProvider({ defaults: { chunks: 4, usage: false } });
    t.after(() => fake.close());
    const d = await json<ChatCompletion>(fake, { path: CHAT, body: { messages } });
    assert.equal(d.body.choices[0]?.message.content, 'tok0 tok1 tok2 tok3 ');
    assert.equal(d.body.usage, undefined);
    const p = await json<ChatCompletion>(fake, {
      path: `/fake/chunks=2,usage=true${CHAT}`,
      body: { messages },
    });
    assert.equal(p.body.choices[0]?.message.content, 'tok0 tok1 ');
    assert.equal(p.body.usage?.completion_tokens, 2);
    const h = await json<ChatCompletion>(fake, {
      path: `/fake/chunks=2${CHAT}`,
      body: { messages },
      headers: { 'x-fake-chunks': '1' },
    });
    assert.equal(h.body.choices[0]?.message.content, 'tok0 ');
  });

  it('rejects invalid defaults', T, async () => {
    await assert.rejects(startFakeProvider({ defaults: { chunks: 0 } }), /chunks/);
  });

  it('close() ends stalled connections promptly', T, async () => {
    const fake = await startFakeProvider();
    const r = await call(fake, {
      path: CHAT,
      body: { messages, stream: true },
      headers: { 'x-fake-stall-after': '1' },
    });
    const failed = assert.rejects(r.body.text());
    await waitFor('stalled', () => fake.stats.stalled === 1);
    const slow = assert.rejects(
      call(fake, { path: '/v1/models', headers: { 'x-fake-headers-delay-ms': '60000' } }),
    );
    await waitFor('2 in flight', () => fake.stats.inFlight === 2);
    const t0 = performance.now();
    await fake.close();
    assert.ok(performance.now() - t0 < 2_000);
    await failed;
    await slow;
    assert.equal(fake.stats.aborted, 2);
    await assert.rejects(call(fake, { path: '/v1/models' }), 'no longer listening');
  });

  it('the CLI prints its URL, serves, and exits cleanly on SIGTERM', T, async () => {
    const main = fileURLToPath(new URL('../../src/fake-provider/main.ts', import.meta.url));
    const child = spawn(process.execPath, [main, '--port', '0', '--chunks', '2', '--retry-after', '3'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = once(child, 'exit');
    try {
      const lines = createInterface({ input: child.stdout });
      const [line] = (await once(lines, 'line')) as [string];
      const m = /^fake provider listening on (http:\/\/127\.0\.0\.1:(\d+))\/v1$/.exec(line);
      assert.ok(m, line);
      const res = await request(`${m[1]}/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ messages }),
        dispatcher: agent,
      });
      assert.equal(res.headers['retry-after'], '3');
      const body = (await res.body.json()) as ChatCompletion;
      assert.equal(body.choices[0]?.message.content, 'tok0 tok1 ');
      child.kill('SIGTERM');
      const [code, signal] = await exited;
      assert.equal(signal, null);
      assert.equal(code, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('the CLI rejects a bad behaviour value with exit code 2', T, async () => {
    const main = fileURLToPath(new URL('../../src/fake-provider/main.ts', import.meta.url));
    const child = spawn(process.execPath, [main, '--port', '0', '--fail-rate', '2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c;
    });
    const [code] = await once(child, 'exit');
    assert.equal(code, 2);
    assert.match(stderr, /--fail-rate/);
  });
});
