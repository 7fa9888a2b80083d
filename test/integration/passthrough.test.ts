/**
 * The pass-through: only listed paths and methods, for listed tenants, under the tenant's request
 * rate and concurrency limits, with a request-log row each; inference paths never, in any spelling;
 * the provider's key swapped in and never echoed back.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Client, request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { validateConfig } from '../../src/config/load.ts';
import { compileRuntime } from '../../src/runtime.ts';
import {
  type Harness,
  OTHER_TENANT_KEY,
  PROVIDER_KEY,
  startHarness,
  TENANT_KEY,
  waitFor,
} from '../helpers/harness.ts';
import { BACKENDS, cleanups, closeSharedPglite, openTestLog } from '../helpers/request-log.ts';

const LIMITED_KEY = 'sk-test-limited-0123456789';
const SOLO_KEY = 'sk-test-solo-0123456789';

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const ROUTES = [
  { path: '/files', methods: ['GET', 'POST'] },
  { path: '/files/*', methods: ['GET', 'DELETE'] },
  { path: '/files/*/content', methods: ['GET'] },
  { path: '/batches', methods: ['GET', 'POST'] },
  { path: '/batches/*/cancel', methods: ['POST'] },
  { path: '/fine_tuning/**', methods: ['GET'] },
  // Open to batchco only, although batchco may use nothing else.
  { path: '/uploads', methods: ['POST'], tenants: ['batchco'] },
];

function config(fake: { origin: string }, baseUrl = `${fake.origin}/fake/headers-delay-ms=1/v1`) {
  return {
    providers: {
      // The base path carries a fake-provider behaviour segment, so the rewrite must keep it.
      files: { kind: 'openai', baseUrl, apiKey: PROVIDER_KEY },
    },
    models: { m: { deployments: [{ provider: 'files' }] } },
    tenants: {
      acme: { keys: [hashKey(TENANT_KEY)] },
      batchco: { keys: [hashKey(OTHER_TENANT_KEY)] },
      limited: { keys: [hashKey(LIMITED_KEY)] },
      solo: { keys: [hashKey(SOLO_KEY)] },
    },
    limits: {
      tenants: {
        limited: { requests: { limit: 1, per: 'minute' } },
        solo: { concurrency: { max: 1 } },
      },
    },
    passthrough: { provider: 'files', tenants: ['acme', 'limited', 'solo'], routes: ROUTES },
  };
}

/** Sends the path exactly as written (undici's request(url) would resolve dot segments first). */
async function raw(
  client: Client,
  method: string,
  path: string,
  headers: Record<string, string> = { authorization: `Bearer ${TENANT_KEY}` },
  body?: string,
) {
  const res = await client.request({ method: method as 'GET', path, headers, body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

describe('pass-through', () => {
  let h: Harness;
  let client: Client;
  before(async () => {
    h = await startHarness({ config: (fake) => config(fake) });
    client = new Client(h.url);
  });
  after(async () => {
    await client.close();
    await h.close();
  });

  it('proxies GET with query to the provider base path, swapping the key', async () => {
    const res = await request(`${h.url}/v1/files?purpose=batch&limit=2`, {
      headers: { authorization: `Bearer ${TENANT_KEY}`, cookie: 'session=1', 'x-custom': 'kept' },
    });
    assert.equal(res.statusCode, 200);
    const echo = (await res.body.json()) as Record<string, unknown>;
    assert.equal(echo.object, 'fake.echo');
    assert.equal(echo.path, '/v1/files');
    assert.equal(echo.authorization, `Bearer ${PROVIDER_KEY}`);
    const seen = h.fake.stats.lastRequest!;
    assert.equal(seen.url, '/fake/headers-delay-ms=1/v1/files?purpose=batch&limit=2');
    assert.equal(seen.headers.cookie, undefined, 'cookies are not forwarded');
    assert.equal(seen.headers['x-custom'], 'kept');
    assert.ok(
      !JSON.stringify(seen.headers).includes(TENANT_KEY),
      'the Sluice key never reaches the provider',
    );
    assert.ok(res.headers['x-request-id']);
    assert.equal(res.headers['x-sluice-deployment'], 'files/passthrough');
  });

  it('proxies POST bodies untouched', async () => {
    const body = JSON.stringify({ input_file_id: 'file-1', endpoint: '/v1/chat/completions' });
    const res = await request(`${h.url}/v1/batches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
      body,
    });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.equal(h.fake.stats.lastRequest!.body, body);
    assert.equal(h.fake.stats.lastRequest!.method, 'POST');
    assert.equal(h.fake.stats.lastRequest!.headers['content-type'], 'application/json');
  });

  it('matches patterns segment by segment: *, ** and literals', async () => {
    const ok = [
      ['GET', '/v1/files/file-abc'],
      ['DELETE', '/v1/files/file-abc'],
      ['GET', '/v1/files/file-abc/content'],
      ['POST', '/v1/batches/batch_1/cancel'],
      ['GET', '/v1/fine_tuning/jobs'],
      ['GET', '/v1/fine_tuning/jobs/ftjob-1/events'],
    ];
    for (const [method, path] of ok) {
      const r = await raw(client, method!, path!);
      assert.equal(r.status, 200, `${method} ${path}: ${r.text}`);
      assert.equal(h.fake.stats.lastRequest!.path, path);
    }
    const missing = [
      ['GET', '/v1/fine_tuning'], // ** needs at least one segment
      ['GET', '/v1/files/a/b'], // * is one segment
      ['GET', '/v1/batches/batch_1/cancel/now'],
      ['GET', '/v1/Files'], // literals are case-sensitive
      ['GET', '/v1/assistants'],
      ['GET', '/v1/models/gpt-4o'],
    ];
    const before = h.fake.stats.requests;
    for (const [method, path] of missing) {
      const r = await raw(client, method!, path!);
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal((JSON.parse(r.text) as ErrorBody).error.code, 'not_found');
    }
    assert.equal(h.fake.stats.requests, before, 'nothing reached the provider');
  });

  it('forwards the canonical path, not the client spelling', async () => {
    for (const path of ['/v1//files/', '/v1/files//file-1/', '/v1/%66iles/file-1']) {
      const r = await raw(client, 'GET', path);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      assert.match(h.fake.stats.lastRequest!.url, /^\/fake\/headers-delay-ms=1\/v1\/files(\/file-1)?$/);
    }
  });

  it('a listed path with an unlisted method -> 405 with allow; nothing reaches the provider', async () => {
    const before = h.fake.stats.requests;
    const r = await raw(client, 'PUT', '/v1/files/file-1');
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'GET, DELETE');
    const body = JSON.parse(r.text) as ErrorBody;
    assert.equal(body.error.code, 'method_not_allowed');
    assert.equal(body.error.type, 'invalid_request_error');
    assert.equal(h.fake.stats.requests, before);
  });

  it('a tenant not listed gets 404 for every route, and only its own routes', async () => {
    const before = h.fake.stats.requests;
    const other = { authorization: `Bearer ${OTHER_TENANT_KEY}` };
    for (const [method, path] of [
      ['GET', '/v1/files'],
      ['GET', '/v1/files/file-1'],
      ['POST', '/v1/batches'],
    ]) {
      const r = await raw(client, method!, path!, other);
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal((JSON.parse(r.text) as ErrorBody).error.code, 'not_found');
    }
    assert.equal(h.fake.stats.requests, before, 'nothing reached the provider');
    // A route with its own tenant list: open to batchco, closed (404, not 405) to acme.
    assert.equal((await raw(client, 'POST', '/v1/uploads', other, '{}')).status, 200);
    assert.equal((await raw(client, 'POST', '/v1/uploads', undefined, '{}')).status, 404);
    assert.equal((await raw(client, 'GET', '/v1/uploads', other)).status, 405);
  });

  it('inference paths are never passed through, in any spelling or with any method', async () => {
    const before = h.fake.stats.requests;
    const post = (path: string) => ['POST', path] as const;
    const cases: Array<readonly [string, string]> = [
      ...['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'].map(
        (m) => [m, '/v1/chat/completions'] as const,
      ),
      ['GET', '/v1/completions'],
      ['DELETE', '/v1/embeddings'],
      ['GET', '/v1/responses'],
      ['GET', '/v1/messages'],
      post('/v1/chat/completions/'),
      post('/v1/chat/completions;x'),
      post('/v1//chat/completions'),
      post('/v1/chat//completions'),
      post('/v1/Chat/Completions'),
      post('/v1/chat/%63ompletions'),
      post('/v1/chat%2Fcompletions'),
      post('/v1/chat/completions%3Bx'),
      post('/v1/./chat/completions'),
      post('/v1/files/../chat/completions'),
      post('/v1/files/%2e%2e/chat/completions'),
      post('/v1/files/%252e%252e/chat/completions'),
      post('/v1/files/..%5Cchat/completions'),
      post('/v1/responses'),
      post('/v1/responses/'),
      post('/v1/messages'),
      post('/v1/embeddings/'),
      post('/v1/completions/'),
      // Stored completions and responses belong to the whole provider account.
      ['GET', '/v1/chat/completions/chatcmpl-123'],
      ['GET', '/v1/chat/completions/chatcmpl-123/messages'],
      ['DELETE', '/v1/chat/completions/chatcmpl-123'],
      ['GET', '/v1/responses/resp_123'],
      ['GET', '/v1/responses/resp_123/input_items'],
      ['GET', '/v1//responses/resp_123'],
      ['GET', '/v1/RESPONSES/resp_123'],
    ];
    const body = JSON.stringify({ model: 'not-configured', messages: [{ role: 'user', content: 'hi' }] });
    for (const [method, path] of cases) {
      const headers = { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' };
      const r = await raw(client, method, path, headers, method === 'POST' ? body : undefined);
      assert.ok(r.status === 404 || r.status === 405, `${method} ${path}: ${r.status} ${r.text}`);
      if (method !== 'HEAD') {
        const err = (JSON.parse(r.text) as ErrorBody).error;
        // fastify's router decodes %63 and hands that one to the inference route itself (metered,
        // where the unconfigured model is model_not_found): still never the pass-through.
        const expected = r.status === 405 ? ['method_not_allowed'] : ['not_found', 'model_not_found'];
        assert.ok(expected.includes(err.code!), `${method} ${path}: ${err.code}`);
      }
      if (r.status === 405) assert.equal(r.headers.allow, 'POST', `${method} ${path}`);
    }
    assert.equal(h.fake.stats.requests, before, 'the provider saw none of them');
    // The same holds for a tenant with no pass-through at all.
    const other = { authorization: `Bearer ${OTHER_TENANT_KEY}` };
    assert.equal((await raw(client, 'GET', '/v1/chat/completions', other)).status, 405);
    assert.equal(h.fake.stats.requests, before);
  });

  it('paths in spellings that are refused -> 404 even where the route exists', async () => {
    const before = h.fake.stats.requests;
    for (const path of [
      '/v1/files;x',
      '/v1/files/file-1;jsessionid=1',
      '/v1/files/a%2Fb',
      '/v1/files/..',
      '/v1/files/%2e',
      '/v1/files/a\\b',
    ]) {
      const r = await raw(client, 'GET', path);
      assert.equal(r.status, 404, `${path}: ${r.text}`);
    }
    // Malformed percent-encoding is refused by fastify's router already, as a 400.
    const malformed = await raw(client, 'GET', '/v1/files/%zz');
    assert.equal(malformed.status, 400);
    assert.equal((JSON.parse(malformed.text) as ErrorBody).error.code, 'invalid_request');
    assert.equal(h.fake.stats.requests, before);
  });

  it('requires a Sluice key', async () => {
    const before = h.fake.stats.requests;
    const res = await request(`${h.url}/v1/files`);
    assert.equal(res.statusCode, 401);
    const body = (await res.body.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'missing_api_key');
    assert.equal(h.fake.stats.requests, before, 'nothing reached the provider');
  });

  it("meets the tenant's request rate: 1 request/minute lets 1 of 10 through", async () => {
    const before = h.fake.stats.requests;
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await raw(client, 'GET', '/v1/files', { authorization: `Bearer ${LIMITED_KEY}` });
      statuses.push(r.status);
      if (r.status === 429) {
        assert.equal((JSON.parse(r.text) as ErrorBody).error.code, 'rate_limit_exceeded');
        assert.ok(r.headers['retry-after']);
        assert.equal(r.headers['x-ratelimit-limit-requests'], '1');
      }
    }
    assert.deepEqual(statuses, [200, ...Array(9).fill(429)], 'the first passes, the other nine are refused');
    assert.equal(h.fake.stats.requests, before + 1, 'the provider saw one request');
  });

  it("meets the tenant's concurrency limit, and the lease is released when the request ends", async () => {
    const solo = { authorization: `Bearer ${SOLO_KEY}` };
    // x-fake-* headers pass through to the fake provider: the first request is held 1 s.
    const slow = raw(client, 'GET', '/v1/files', { ...solo, 'x-fake-headers-delay-ms': '1000' });
    await waitFor(() => h.fake.stats.inFlight > 0, 5_000, 'the slow request upstream');
    const second = await request(`${h.url}/v1/files`, { headers: solo });
    assert.equal(second.statusCode, 429);
    assert.equal(((await second.body.json()) as ErrorBody).error.code, 'concurrency_limit_exceeded');
    assert.equal((await slow).status, 200);
    const third = await request(`${h.url}/v1/files`, { headers: solo });
    await third.body.dump();
    assert.equal(third.statusCode, 200, 'the finished request gave its lease back');
  });

  it('an unreachable pass-through provider -> 502 upstream_unreachable in OpenAI shape', async () => {
    const next = validateConfig(config(h.fake, 'http://127.0.0.1:1/v1'), {});
    const previous = h.gateway.current();
    h.gateway.apply(compileRuntime(next));
    try {
      const res = await request(`${h.url}/v1/files`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
      assert.equal(res.statusCode, 502);
      const body = (await res.body.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'upstream_unreachable');
    } finally {
      h.gateway.apply(previous);
    }
  });

  it('without a passthrough section every other /v1 path is 404', async () => {
    const { passthrough: _off, ...rest } = config(h.fake);
    const previous = h.gateway.current();
    h.gateway.apply(compileRuntime(validateConfig(rest, {})));
    try {
      const before = h.fake.stats.requests;
      const r = await raw(client, 'GET', '/v1/files');
      assert.equal(r.status, 404);
      assert.equal((JSON.parse(r.text) as ErrorBody).error.code, 'not_found');
      assert.equal(h.fake.stats.requests, before);
    } finally {
      h.gateway.apply(previous);
    }
  });
});

/**
 * A provider that answers like OpenAI to a bad key: 401 with the key masked in the message. Also
 * a 500 with a body far larger than any error, and a gzipped 404.
 */
async function startAuthFailingProvider(): Promise<{ origin: string; seen: number; close(): Promise<void> }> {
  const state = { seen: 0 };
  const server: Server = createServer((req, res) => {
    state.seen++;
    const key = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    if (req.url?.includes('/huge')) {
      res.writeHead(500, { 'content-type': 'text/html' });
      res.end(`<html>${'x'.repeat(1024 * 1024)}</html>`);
      return;
    }
    if (req.url?.includes('/gzipped')) {
      res.writeHead(404, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(
        gzipSync(
          JSON.stringify({
            error: {
              message: 'No such File object: file-x',
              type: 'invalid_request_error',
              param: 'id',
              code: null,
            },
          }),
        ),
      );
      return;
    }
    const masked = `${key.slice(0, 8)}${'*'.repeat(12)}${key.slice(-4)}`;
    const status = req.url?.includes('/forbidden') ? 403 : 401;
    res.writeHead(status, {
      'content-type': 'application/json',
      'x-request-id': 'req_provider_123',
      'openai-organization': 'org-secret',
    });
    res.end(
      JSON.stringify({
        error: {
          message: `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com/account/api-keys.`,
          type: 'invalid_request_error',
          param: null,
          code: 'invalid_api_key',
        },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    get seen() {
      return state.seen;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('pass-through: provider errors', () => {
  let h: Harness;
  let provider: Awaited<ReturnType<typeof startAuthFailingProvider>>;
  before(async () => {
    provider = await startAuthFailingProvider();
    h = await startHarness({
      config: () => ({
        ...config({ origin: provider.origin }, `${provider.origin}/v1`),
        passthrough: {
          provider: 'files',
          tenants: ['acme'],
          routes: [
            { path: '/files/**', methods: ['GET'] },
            { path: '/forbidden', methods: ['GET'] },
            { path: '/huge', methods: ['GET'] },
            { path: '/gzipped', methods: ['GET'] },
          ],
        },
      }),
    });
  });
  after(async () => {
    await h.close();
    await provider.close();
  });

  it('a provider 401 becomes 502 upstream_auth_failed; no byte of its message or key reaches the client', async () => {
    const seen = provider.seen;
    const res = await request(`${h.url}/v1/files/file-1`, {
      headers: { authorization: `Bearer ${TENANT_KEY}` },
    });
    const text = await res.body.text();
    assert.equal(provider.seen, seen + 1, 'the request did reach the provider');
    assert.equal(res.statusCode, 502);
    const body = JSON.parse(text) as ErrorBody;
    assert.equal(body.error.code, 'upstream_auth_failed');
    assert.equal(body.error.type, 'api_error');
    for (const leak of ['Incorrect API key', PROVIDER_KEY.slice(0, 8), PROVIDER_KEY.slice(-4), '****']) {
      assert.ok(!text.includes(leak), `response body has ${leak}`);
      assert.ok(!JSON.stringify(res.headers).includes(leak), `response headers have ${leak}`);
    }
    assert.notEqual(res.headers['x-request-id'], 'req_provider_123');
    assert.equal(res.headers['openai-organization'], undefined);
    assert.ok(!h.rawLogs().includes(PROVIDER_KEY.slice(-4)), 'nor does the log');
  });

  it('a provider 403 too', async () => {
    const res = await request(`${h.url}/v1/forbidden`, {
      headers: { authorization: `Bearer ${TENANT_KEY}` },
    });
    const text = await res.body.text();
    assert.equal(res.statusCode, 502);
    assert.equal((JSON.parse(text) as ErrorBody).error.code, 'upstream_auth_failed');
    assert.ok(!text.includes('Incorrect API key'));
  });

  it('other provider errors keep their status in OpenAI shape; huge ones are cut, compressed ones read', async () => {
    const huge = await request(`${h.url}/v1/huge`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
    const hugeText = await huge.body.text();
    assert.equal(huge.statusCode, 500);
    assert.ok(hugeText.length < 1024, `a small answer, not the provider's 1 MiB page (${hugeText.length})`);
    assert.equal((JSON.parse(hugeText) as ErrorBody).error.message, 'Provider returned HTTP 500');

    const gz = await request(`${h.url}/v1/gzipped`, {
      headers: { authorization: `Bearer ${TENANT_KEY}`, 'accept-encoding': 'gzip' },
    });
    assert.equal(gz.statusCode, 404);
    assert.equal(gz.headers['content-encoding'], undefined);
    const err = ((await gz.body.json()) as ErrorBody).error;
    assert.equal(err.message, 'No such File object: file-x');
    assert.equal(err.param, 'id');
  });
});

after(() => closeSharedPglite());

describe('pass-through: request log', () => {
  it('each pass-through request gets a row: route pattern, <provider>/passthrough, tenant, status', async (t) => {
    const defer = cleanups(t);
    const pglite = BACKENDS.find((b) => b.name === 'pglite')!;
    const opened = (await pglite.open(t))!;
    defer(() => opened.drop());
    const { requestLog } = await openTestLog(defer, { flushIntervalMs: 20 }, { db: opened.db });
    const h = await startHarness({ requestLog, config: (fake) => config(fake) });
    defer(() => h.close());
    const ok = await request(`${h.url}/v1/files/file-7`, {
      headers: { authorization: `Bearer ${TENANT_KEY}` },
    });
    await ok.body.dump();
    const okId = ok.headers['x-request-id'] as string;
    const refused = await request(`${h.url}/v1/chat/completions`, {
      headers: { authorization: `Bearer ${TENANT_KEY}` },
    });
    await refused.body.dump();
    const refusedId = refused.headers['x-request-id'] as string;
    await waitFor(
      () => {
        const s = requestLog.writer.stats();
        return s.buffered === 0 && s.writing === 0;
      },
      20_000,
      'rows written',
    );
    await requestLog.writer.idle();
    const rows = await opened.db.query<Record<string, unknown>>(
      `SELECT request_id, tenant, route, model, deployment, status, error_code, attempts
         FROM request_log WHERE request_id IN ($1, $2)`,
      [okId, refusedId],
    );
    const byId = new Map(rows.map((r) => [r.request_id, r]));
    assert.deepEqual(byId.get(okId), {
      request_id: okId,
      tenant: 'acme',
      route: '/v1/files/*',
      model: null,
      deployment: 'files/passthrough',
      status: 200,
      error_code: null,
      attempts: 1,
    });
    assert.equal(byId.get(refusedId)?.status, 405);
    assert.equal(byId.get(refusedId)?.error_code, 'method_not_allowed');
  });
});
