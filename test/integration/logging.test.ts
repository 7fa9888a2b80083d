/** One log line per request, with what operators need, and never a key. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import { type Harness, PROVIDER_KEY, startHarness, TENANT_KEY, waitFor } from '../helpers/harness.ts';

describe('request logging', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('writes one line per request with tenant, model, deployment, status, timings and tokens', async () => {
    const client = new OpenAI({ baseURL: h.baseURL, apiKey: TENANT_KEY, maxRetries: 0 });
    await client.chat.completions.create(
      { model: 'test-model', messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-request-id': 'log-test-1' } },
    );
    await waitFor(() => h.logs.some((l) => l.requestId === 'log-test-1'));
    const lines = h.logs.filter((l) => l.requestId === 'log-test-1');
    assert.equal(lines.length, 1, 'exactly one line for the request');
    const line = lines[0]!;
    assert.equal(line.msg, 'request');
    assert.equal(line.tenant, 'acme');
    assert.equal(line.model, 'test-model');
    assert.equal(line.deployment, 'fake/upstream-test-model@local');
    assert.equal(line.status, 200);
    assert.equal(line.completionTokens, 5);
    assert.equal(typeof line.durationMs, 'number');
  });

  it('never logs the provider key or the client key, on success or failure', async () => {
    await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: '{broken',
    }).then((r) => r.body.dump());
    await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers({ authorization: `Bearer ${TENANT_KEY}x` }),
      body: '{}',
    }).then((r) => r.body.dump());
    await request(`${h.url}/v1/files`, { headers: h.headers() }).then((r) => r.body.dump());
    const raw = h.rawLogs();
    assert.ok(raw.length > 0);
    assert.ok(!raw.includes(PROVIDER_KEY), 'provider key in logs');
    assert.ok(!raw.includes(TENANT_KEY), 'client key in logs');
  });
});
