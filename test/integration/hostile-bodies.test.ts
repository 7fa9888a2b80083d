/**
 * What one tenant sends or provokes must stay that tenant's problem: a body nested past what any
 * recursive step can handle is a 400 that never reaches a breaker, a bug in Sluice is never a mark
 * against a deployment, and an answer too large to hold is a 502, not a crashed process.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import {
  chatBody,
  type Harness,
  OTHER_TENANT_KEY,
  PROVIDER_KEY,
  startHarness,
  TENANT_KEY,
} from '../helpers/harness.ts';
import { type SluiceProcess, startSluiceProcess } from '../helpers/process.ts';

async function post(h: Harness, body: string, key = TENANT_KEY, model = 'test-model') {
  const res = await request(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body.replace('"test-model"', JSON.stringify(model)),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

describe('a body nested too deep', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        server: { bodyLimitBytes: 1024 * 1024 },
        // A breaker that opens after a handful of failures, so a leak of even a few would show.
        breaker: { volumeThreshold: 5, errorThresholdPercent: 50 },
        providers: { fake: { kind: 'openai', baseUrl: fake.baseUrl, apiKey: PROVIDER_KEY } },
        models: { 'test-model': { deployments: [{ provider: 'fake' }] } },
        tenants: {
          acme: { keys: [hashKey(TENANT_KEY)] },
          other: { keys: [hashKey(OTHER_TENANT_KEY)] },
        },
      }),
    });
  });
  after(() => h.close());

  it('100,000 levels deep -> 400 for that request; the breaker and the other tenant never notice', async () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const body = `{"model":"test-model","messages":[{"role":"user","content":"hi"}],"metadata_x":${deep}}`;
    for (let i = 0; i < 25; i++) {
      const r = await post(h, body);
      assert.equal(r.status, 400);
      const error = r.json().error;
      assert.equal(error.code, 'invalid_request');
      assert.match(error.message, /deeper than 128 levels/);
    }
    assert.equal(h.fake.stats.requests, 0, 'nothing reached the provider');
    const [health] = h.gateway.health.snapshot();
    assert.equal(health!.state, 'closed');
    assert.equal(health!.fires, 0);
    assert.equal(health!.outstanding, 0);
    const ok = await post(h, chatBody(), OTHER_TENANT_KEY);
    assert.equal(ok.status, 200);
  });

  it('nesting up to the bound is accepted, and brackets inside strings do not count', async () => {
    const nested = `${'{"a":'.repeat(100)}1${'}'.repeat(100)}`;
    const r = await post(
      h,
      `{"model":"test-model","messages":[{"role":"user","content":"${'[{'.repeat(5_000)}\\"["}],"x":${nested}}`,
    );
    assert.equal(r.status, 200, r.text);
  });

  it("a failure that is not the provider's (a bug in Sluice) never counts against a deployment", async () => {
    const deployment = h.gateway.health.snapshot()[0]!.deployment;
    const breaker = h.gateway.health.get(deployment).breaker;
    const before = breaker.counts().failures;
    for (let i = 0; i < 20; i++) {
      await assert.rejects(breaker.run(() => Promise.reject(new TypeError('a bug in Sluice'))));
    }
    assert.equal(breaker.state(), 'closed');
    assert.equal(breaker.counts().failures, before);
    assert.equal((await post(h, chatBody())).status, 200);
  });
});

/** An upstream that answers what FastAPI/vLLM-style servers and careless proxies send. */
async function startBigAnswers(): Promise<{ baseUrl: string; server: Server }> {
  const big = 'x'.repeat(200 * 1024);
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url ?? '';
      if (path.startsWith('/big-json/')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        // Larger than the gateway's maxResponseBytes (64 KiB below), in several writes.
        for (let i = 0; i < 4; i++) res.write(`{"pad${i}":"${big}",`);
        res.end('"object":"chat.completion"}');
      } else if (path.startsWith('/small/')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id: 'chatcmpl-1',
            object: 'chat.completion',
            choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
            usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
          }),
        );
      } else if (path.startsWith('/big-400/')) {
        // FastAPI's validation error echoes the input back.
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ detail: [{ type: 'value_error', msg: 'bad', input: big }] }));
      } else if (path.startsWith('/big-503/')) {
        res.writeHead(503, { 'content-type': 'text/html' });
        res.end(`<html><body>${big}</body></html>`);
      } else {
        res.writeHead(404).end();
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('an answer too large to hold (a real gateway process)', () => {
  let gateway: SluiceProcess;
  let upstream: { baseUrl: string; server: Server };
  let dir: string;
  before(async () => {
    upstream = await startBigAnswers();
    dir = mkdtempSync(join(tmpdir(), 'sluice-big-'));
    const provider = (path: string) => ({
      kind: 'openai',
      baseUrl: `${upstream.baseUrl}${path}/v1`,
      apiKey: PROVIDER_KEY,
    });
    const config = {
      server: { host: '127.0.0.1', port: 0, maxResponseBytes: 64 * 1024 },
      requestLog: { enabled: false },
      retry: { maxAttempts: 1 },
      providers: {
        small: provider('/small'),
        bigJson: provider('/big-json'),
        big400: provider('/big-400'),
        big503: provider('/big-503'),
      },
      models: {
        'test-model': { deployments: [{ provider: 'small' }] },
        'big-json': { deployments: [{ provider: 'bigJson' }] },
        'big-400': { deployments: [{ provider: 'big400' }] },
        'big-503': { deployments: [{ provider: 'big503' }] },
      },
      tenants: { acme: { keys: [hashKey(TENANT_KEY)] } },
    };
    const file = join(dir, 'sluice.json.yaml');
    writeFileSync(file, JSON.stringify(config));
    gateway = await startSluiceProcess(['--config', file]);
  });
  after(async () => {
    gateway.kill('SIGKILL');
    await gateway.exited;
    upstream.server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (model: string) => post({ url: gateway.url } as Harness, chatBody(), TENANT_KEY, model);

  it('a JSON answer over maxResponseBytes -> 502, and the process serves the next request', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await call('big-json');
      assert.equal(r.status, 502);
      assert.equal(r.json().error.code, 'upstream_bad_response');
    }
    assert.equal((await call('test-model')).status, 200);
  });

  it('a ~200 KB provider error body (4xx and 5xx) -> its status in OpenAI shape, the process unharmed', async () => {
    for (let i = 0; i < 3; i++) {
      const bad = await call('big-400');
      assert.equal(bad.status, 400);
      assert.equal(bad.json().error.code, 'upstream_error');
      assert.ok(bad.text.length < 2_000, 'the echoed input is not relayed');
      const down = await call('big-503');
      assert.equal(down.status, 503);
      assert.ok(!down.text.includes('<html>'));
    }
    // Any late 'error' event has had its turn: the process is alive and answers.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(gateway.child.exitCode, null, gateway.stderr());
    assert.equal((await call('test-model')).status, 200);
  });
});
