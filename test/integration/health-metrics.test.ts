import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { chatBody, type Harness, startHarness } from '../helpers/harness.ts';

describe('health and metrics endpoints', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('/healthz and /readyz answer without a key', async () => {
    const live = await request(`${h.url}/healthz`);
    assert.equal(live.statusCode, 200);
    assert.deepEqual(await live.body.json(), { status: 'ok' });
    const ready = await request(`${h.url}/readyz`);
    assert.equal(ready.statusCode, 200);
    const body = (await ready.body.json()) as { status: string; configLoadedAt: string };
    assert.equal(body.status, 'ready');
    assert.ok(!Number.isNaN(Date.parse(body.configLoadedAt)));
  });

  it('/metrics counts requests by route, model, status and code', async () => {
    const ok = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: chatBody(),
    });
    await ok.body.dump();
    const bad = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: chatBody({ model: 'missing' }),
    });
    await bad.body.dump();
    const res = await request(`${h.url}/metrics`);
    const text = await res.body.text();
    assert.match(String(res.headers['content-type']), /text\/plain/);
    assert.match(
      text,
      /sluice_requests_total\{route="\/v1\/chat\/completions",model="test-model",status="200",code=""\} 1/,
    );
    assert.match(text, /sluice_requests_total\{[^}]*status="404",code="model_not_found"\} 1/);
    assert.match(text, /sluice_tokens_total\{tenant="acme",model="test-model",kind="completion"\} 5/);
    assert.match(
      text,
      /sluice_upstream_duration_seconds_count\{provider="fake",deployment="fake\/upstream-test-model@local",outcome="ok"\} 1/,
    );
    // An unknown model name from a client must not become a label value.
    assert.ok(!text.includes('missing"'), 'client-chosen model names are not labels');
  });

  it('/readyz fails and new API requests get 503 shutting_down while draining', async () => {
    h.gateway.startDraining();
    const ready = await request(`${h.url}/readyz`);
    assert.equal(ready.statusCode, 503);
    assert.equal(((await ready.body.json()) as { status: string }).status, 'draining');
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: chatBody(),
    });
    assert.equal(res.statusCode, 503);
    assert.equal(((await res.body.json()) as { error: { code: string } }).error.code, 'shutting_down');
  });
});
