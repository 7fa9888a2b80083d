/** Provider failures reach the client in OpenAI shape with the right status and a code that says why. */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import type { FakeProvider } from '../../src/fake-provider/server.ts';
import { type Harness, startHarness, TENANT_KEY } from '../helpers/harness.ts';

let blackhole: Server;
let blackholePort = 0;
let closedPort = 0;
/** A provider whose errors carry no `type`: a typeless JSON 404 and an HTML 503. */
let bare: HttpServer;
let barePort = 0;

function config(fake: FakeProvider): Record<string, unknown> {
  const p = (behaviour: string, extra: Record<string, unknown> = {}) => ({
    kind: 'openai',
    baseUrl: `${fake.origin}/fake/${behaviour}/v1`,
    ...extra,
  });
  const fast = {
    connectTimeoutMs: 200,
    firstTokenTimeoutMs: 300,
    chunkGapTimeoutMs: 300,
    totalTimeoutMs: 2_000,
  };
  const providers: Record<string, unknown> = {
    s400: p('status=400'),
    s429: p('status=429,retry-after=7'),
    s503: p('status=503'),
    s404: p('status=404'),
    bare404: { kind: 'openai', baseUrl: `http://127.0.0.1:${barePort}/json404/v1` },
    bare503: { kind: 'openai', baseUrl: `http://127.0.0.1:${barePort}/html503/v1` },
    slow: p('headers-delay-ms=2000', { timeouts: fast }),
    refused: { kind: 'openai', baseUrl: `http://127.0.0.1:${closedPort}/v1` },
    // Accepts TCP but never answers: the request is sent and then nothing comes back.
    silent: { kind: 'openai', baseUrl: `http://127.0.0.1:${blackholePort}/v1`, timeouts: fast },
  };
  const models = Object.fromEntries(
    Object.keys(providers).map((name) => [name, { deployments: [{ provider: name }] }]),
  );
  // One attempt: these tests are about how each failure is reported; retries are tested elsewhere.
  return { providers, models, tenants: { acme: { keys: [hashKey(TENANT_KEY)] } }, retry: { maxAttempts: 1 } };
}

describe('upstream errors', () => {
  let h: Harness;
  before(async () => {
    blackhole = createServer(() => {}).listen(0, '127.0.0.1');
    await new Promise((r) => blackhole.once('listening', r));
    blackholePort = (blackhole.address() as { port: number }).port;
    const probe = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => probe.once('listening', r));
    closedPort = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    bare = createHttpServer((req, res) => {
      req.resume();
      if (req.url?.startsWith('/json404/')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"no such thing here"}}');
      } else {
        res.writeHead(503, { 'content-type': 'text/html' });
        res.end('<html><body>Service Unavailable</body></html>');
      }
    }).listen(0, '127.0.0.1');
    await new Promise((r) => bare.once('listening', r));
    barePort = (bare.address() as { port: number }).port;
    h = await startHarness({ config });
  });
  after(async () => {
    await h.close();
    blackhole.close();
    bare.close();
  });

  async function call(model: string) {
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] }),
    });
    const body = (await res.body.json()) as { error: Record<string, unknown> };
    return { status: res.statusCode, headers: res.headers, error: body.error };
  }

  it("passes a provider's 400 through with its own status and error", async () => {
    const r = await call('s400');
    assert.equal(r.status, 400);
    assert.equal(r.error.type, 'invalid_request_error');
    assert.match(String(r.error.message), /fake provider/);
  });

  it("passes a provider's 429 through with retry-after", async () => {
    const r = await call('s429');
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '7');
    assert.equal(r.error.code, 'rate_limit_exceeded');
  });

  it("passes a provider's 503 through: its status and its type, never 502", async () => {
    const r = await call('s503');
    assert.equal(r.status, 503);
    assert.equal(r.error.type, 'server_error', "the provider's own type");
    assert.equal(r.error.code, 'upstream_error', 'the provider sent no code');
    assert.equal(typeof r.error.message, 'string');
  });

  it("passes a provider's 404 through with its status, type and code", async () => {
    const r = await call('s404');
    assert.equal(r.status, 404);
    assert.equal(r.error.type, 'invalid_request_error');
    assert.equal(r.error.code, 'not_found');
  });

  it('a provider error without a type gets one from its status (docs/errors.md)', async () => {
    const json = await call('bare404');
    assert.equal(json.status, 404);
    assert.equal(json.error.type, 'invalid_request_error');
    assert.equal(json.error.code, 'upstream_error');
    assert.equal(json.error.message, 'no such thing here');
    const html = await call('bare503');
    assert.equal(html.status, 503);
    assert.equal(html.error.type, 'api_error');
    assert.equal(html.error.code, 'upstream_error');
    assert.equal(html.error.message, 'Provider returned HTTP 503', 'an HTML page is never echoed');
  });

  it('connection refused -> 502 upstream_unreachable', async () => {
    const r = await call('refused');
    assert.equal(r.status, 502);
    assert.equal(r.error.code, 'upstream_unreachable');
  });

  it('no response headers in time -> 504 first_token_timeout naming the phase', async () => {
    const t0 = performance.now();
    const r = await call('slow');
    assert.equal(r.status, 504);
    assert.equal(r.error.code, 'first_token_timeout');
    assert.equal(r.error.type, 'timeout_error');
    assert.ok(performance.now() - t0 < 1_500);
  });

  it('a silent upstream that accepted the connection -> 504, never a hang', async () => {
    const r = await call('silent');
    assert.equal(r.status, 504);
    assert.equal(r.error.code, 'first_token_timeout');
  });

  it('every failure is one log line with the error code and deployment', async () => {
    const line = h.logs.find((l) => l.model === 'refused' && l.msg === 'request');
    assert.ok(line);
    assert.equal(line.code, 'upstream_unreachable');
    assert.equal(line.deployment, 'refused/refused@default');
    assert.equal(line.status, 502);
  });
});
