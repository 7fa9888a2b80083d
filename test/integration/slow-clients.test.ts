/**
 * Slow and malformed clients: the headers and request timeouts cut a slowloris (headers or body,
 * with or without a key, also after the 401 went out) with a 408 in OpenAI's shape where an answer
 * is still possible, while requests already received (waiting on a slow provider, or streaming
 * with quiet gaps) run to the end. Oversized and malformed headers get 431/400 in the same shape.
 * Node's timeout semantics are what is under test here, so the timeouts are short and real.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from 'undici';
import { chatBody, type Harness, startHarness, TENANT_KEY, waitFor } from '../helpers/harness.ts';
import { fakeModels } from '../helpers/models.ts';
import { bytes, dribble, metricValue, parseResponse } from '../helpers/raw-http.ts';

const HEADERS_MS = 400;
const REQUEST_MS = 800;

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

describe('slow and malformed clients', () => {
  let h: Harness;
  let port: number;
  before(async () => {
    h = await startHarness({
      config: (fake) =>
        fakeModels(
          fake,
          {
            'test-model': { deployments: { quick: {} } },
            // Both answer well after the headers and request timeouts have passed.
            'slow-model': { deployments: { slow: { behaviour: 'headers-delay-ms=2000' } } },
            'gappy-model': {
              deployments: { gappy: { behaviour: 'first-chunk-delay-ms=1200,chunks=3,chunk-gap-ms=1000' } },
            },
          },
          {
            server: { headersTimeoutMs: HEADERS_MS, requestTimeoutMs: REQUEST_MS, keepAliveTimeoutMs: 300 },
          },
        ),
    });
    port = Number(new URL(h.url).port);
  });
  after(() => h.close());

  const body = chatBody();
  const head = (authorization?: string) =>
    'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n' +
    (authorization === undefined ? '' : `authorization: ${authorization}\r\n`) +
    `content-length: ${body.length}\r\n\r\n`;

  function assertTimeoutAnswer(data: string): void {
    const res = parseResponse(data);
    assert.equal(res.status, 408);
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.headers['x-should-retry'], 'false', 'an SDK must not resend it on its own');
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    const parsed = JSON.parse(res.body) as ErrorBody;
    assert.equal(parsed.error.code, 'request_timeout');
    assert.equal(parsed.error.type, 'invalid_request_error');
    assert.equal(parsed.error.param, null);
  }

  it('a header slowloris (one byte every 100 ms) is cut by the headers timeout with a 408', async () => {
    // 300 bytes at 100 ms would take 30 s: the headers never end while the connection lives.
    const endless = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-pad: ${'a'.repeat(300)}`;
    const exchange = await dribble(port, bytes(endless), 100);
    assert.ok(exchange.closedByServer, 'the gateway closed the connection');
    assert.ok(exchange.sent < endless.length / 2, `cut early, after ${exchange.sent} bytes`);
    assertTimeoutAnswer(exchange.data);
  });

  it('a connection that sends nothing is closed by the headers timeout too', async () => {
    const exchange = await dribble(port, [], 0, { graceMs: 10_000 });
    assert.ok(exchange.closedByServer);
    assertTimeoutAnswer(exchange.data);
  });

  it('a body at one byte every 100 ms with a valid key gets 408 request_timeout, logged as such', async () => {
    const before = await metricValue(h.url, 'sluice_client_errors_total', 'code="request_timeout"');
    const exchange = await dribble(port, [head(`Bearer ${TENANT_KEY}`), ...bytes(body)], 100);
    assert.ok(exchange.closedByServer);
    assert.ok(exchange.sent < body.length / 2, `cut early, after ${exchange.sent} chunks`);
    assertTimeoutAnswer(exchange.data);
    assert.ok((await metricValue(h.url, 'sluice_client_errors_total', 'code="request_timeout"')) > before);
    await waitFor(() => h.logs.some((l) => l.msg === 'request' && l.code === 'request_timeout'));
    const line = h.logs.find((l) => l.msg === 'request' && l.code === 'request_timeout')!;
    assert.equal(line.status, 408);
    assert.equal(line.tenant, 'acme');
    assert.equal(
      await metricValue(
        h.url,
        'sluice_requests_total',
        'route="/v1/chat/completions",model="unknown",status="408",code="request_timeout"',
      ),
      1,
    );
  });

  for (const [name, authorization] of [
    ['a wrong key', 'Bearer sk-wrong-0123456789'],
    ['no key', undefined],
  ] as const) {
    it(`a slow body with ${name}: the 401 goes out at once, then the connection is closed`, async () => {
      const exchange = await dribble(port, [head(authorization), ...bytes(body)], 100);
      assert.ok(exchange.closedByServer, 'closed by the request timeout, not left to dribble');
      assert.ok(exchange.sent < body.length / 2, `cut early, after ${exchange.sent} chunks`);
      const res = parseResponse(exchange.data);
      assert.equal(res.status, 401);
      // One answer only: no 408 after the 401 on the same request.
      assert.equal(exchange.data.indexOf('HTTP/1.1', 1), -1, exchange.data);
    });
  }

  it('a request waiting on its provider longer than both timeouts still gets its answer', async () => {
    const client = new Client(h.url, { pipelining: 1 });
    try {
      const res = await client.request({
        path: '/v1/chat/completions',
        method: 'POST',
        headers: h.headers(),
        body: chatBody({ model: 'slow-model' }),
      });
      assert.equal(res.statusCode, 200);
      const json = (await res.body.json()) as { choices: Array<{ message: { content: string } }> };
      assert.ok(json.choices[0]!.message.content.length > 0);
      // The same keep-alive connection still serves the next request.
      const again = await client.request({ path: '/healthz', method: 'GET' });
      assert.equal(again.statusCode, 200);
      await again.body.dump();
    } finally {
      await client.close();
    }
  });

  it('a stream whose first token and gaps each outlast both timeouts runs to [DONE]', async () => {
    const client = new Client(h.url);
    try {
      const res = await client.request({
        path: '/v1/chat/completions',
        method: 'POST',
        headers: h.headers(),
        body: chatBody({ model: 'gappy-model', stream: true }),
      });
      assert.equal(res.statusCode, 200);
      const text = await res.body.text();
      assert.match(text, /data: \[DONE\]/);
      assert.equal(text.match(/"content":"tok\d/g)?.length, 3);
    } finally {
      await client.close();
    }
  });

  it('an idle keep-alive connection is closed after keepAliveTimeoutMs', async () => {
    const exchange = await dribble(port, ['GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n'], 0, {
      graceMs: 10_000,
    });
    assert.ok(exchange.closedByServer);
    assert.equal(parseResponse(exchange.data).status, 200);
  });

  it('headers over 16 KiB get 431 request_header_too_large in OpenAI shape', async () => {
    const exchange = await dribble(
      port,
      [`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`],
      0,
    );
    assert.ok(exchange.closedByServer);
    const res = parseResponse(exchange.data);
    assert.equal(res.status, 431);
    assert.equal(res.headers.connection, 'close');
    assert.equal((JSON.parse(res.body) as ErrorBody).error.code, 'request_header_too_large');
  });

  for (const [name, raw] of [
    ['a malformed header line', 'GET /healthz HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n'],
    ['a malformed request line', 'NOT HTTP AT ALL\r\n\r\n'],
    [
      'both content-length and chunked',
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n{}`,
    ],
  ] as const) {
    it(`${name} gets 400 invalid_request in OpenAI shape`, async () => {
      const exchange = await dribble(port, [raw], 0);
      assert.ok(exchange.closedByServer);
      const res = parseResponse(exchange.data);
      assert.equal(res.status, 400);
      assert.equal(res.headers.connection, 'close');
      const parsed = JSON.parse(res.body) as ErrorBody;
      assert.equal(parsed.error.code, 'invalid_request');
      assert.equal(parsed.error.type, 'invalid_request_error');
    });
  }

  it('the timeouts follow a config reload', async () => {
    const runtime = h.gateway.current();
    const server = { ...runtime.config.server, headersTimeoutMs: 5_000, requestTimeoutMs: 7_000 };
    h.gateway.apply({ ...runtime, config: { ...runtime.config, server } });
    try {
      assert.equal(h.gateway.app.server.headersTimeout, 5_000);
      assert.equal(h.gateway.app.server.requestTimeout, 7_000);
    } finally {
      h.gateway.apply(runtime);
    }
    assert.equal(h.gateway.app.server.requestTimeout, REQUEST_MS);
  });
});
