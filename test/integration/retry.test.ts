/**
 * Classified retries against the fake provider, asserting exact upstream call counts: permanent
 * errors are not retried, 429s honour Retry-After or move on, overload is retried with backoff,
 * attempts are bounded, and the retry budget caps what a storm can add.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type Harness, startHarness } from '../helpers/harness.ts';
import { FIRST, fakeModels, LAST } from '../helpers/models.ts';

describe('retries', () => {
  let h: Harness;
  const count = (name: string) => h.fake.stats.byBehaviour[name] ?? 0;
  before(async () => {
    h = await startHarness({
      config: (fake) =>
        fakeModels(
          fake,
          {
            ok: { deployments: { okdep: {} } },
            bad400: { deployments: { d400: { behaviour: 'status=400' } }, fallbacks: ['ok'] },
            bad401: { deployments: { d401: { behaviour: 'status=401' } }, fallbacks: ['ok'] },
            bad404: { deployments: { d404: { behaviour: 'status=404' } }, fallbacks: ['ok'] },
            limited: { deployments: { d429: { behaviour: 'fail-first=1,fail-status=429,retry-after=0.3' } } },
            // OpenAI and Azure send the precise retry-after-ms next to a coarse Retry-After.
            limitedMs: {
              deployments: {
                d429ms: { behaviour: 'fail-first=1,fail-status=429,retry-after=30,retry-after-ms=300' },
              },
            },
            limitedLong: {
              deployments: {
                d429long: { behaviour: 'fail-first=1000,fail-status=429,retry-after=30', weight: FIRST },
                spare: { weight: LAST },
              },
            },
            flaky: { deployments: { d503once: { behaviour: 'fail-first=1,fail-status=503' } } },
            down: { deployments: { d503: { behaviour: 'status=503' } } },
          },
          {
            retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
            // Keep breakers out of these tests.
            breaker: { volumeThreshold: 1000 },
          },
        ),
    });
  });
  after(() => h.close());

  const call = async (model: string) => {
    const t0 = performance.now();
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] }),
    });
    const body = (await res.body.json()) as { error?: { code: string } };
    return { status: res.statusCode, headers: res.headers, body, ms: performance.now() - t0 };
  };

  for (const [model, dep, status] of [
    ['bad400', 'd400', 400],
    ['bad401', 'd401', 502],
    ['bad404', 'd404', 404],
  ] as const) {
    it(`a provider ${dep.slice(1)} is not retried and does not fall back (one upstream call)`, async () => {
      const okBefore = count('okdep');
      const r = await call(model);
      assert.equal(r.status, status);
      assert.equal(count(dep), 1);
      assert.equal(count('okdep'), okBefore, 'no fallback');
      assert.equal(r.headers['x-sluice-attempts'], '1');
    });
  }

  it('a 429 with Retry-After that fits the deadline waits that long, then succeeds (two calls)', async () => {
    const r = await call('limited');
    assert.equal(r.status, 200);
    assert.equal(count('d429'), 2);
    assert.equal(r.headers['x-sluice-attempts'], '2');
    assert.ok(r.ms >= 290, `waited ${r.ms} ms for a 300 ms Retry-After`);
  });

  it('retry-after-ms is read and wins over a coarser Retry-After (two calls, ~300 ms apart)', async () => {
    const r = await call('limitedMs');
    assert.equal(r.status, 200);
    assert.equal(count('d429ms'), 2);
    assert.ok(r.ms >= 290, `waited ${r.ms} ms for a 300 ms retry-after-ms`);
  });

  it('a 429 whose Retry-After is past the deadline goes to the next deployment at once', async () => {
    const r = await call('limitedLong');
    assert.equal(r.status, 200);
    assert.equal(count('d429long'), 1);
    assert.equal(count('spare'), 1);
    assert.equal(r.headers['x-sluice-deployment'], 'spare/limitedLong@spare');
    assert.ok(r.ms < 1_000, `moved on in ${r.ms} ms`);
  });

  it('an overloaded provider (503) is retried with backoff and the retry succeeds', async () => {
    const r = await call('flaky');
    assert.equal(r.status, 200);
    assert.equal(count('d503once'), 2);
    assert.equal(r.headers['x-sluice-attempts'], '2');
  });

  it('attempts are bounded by retry.maxAttempts, then the last error is answered', async () => {
    const before = count('d503');
    const r = await call('down');
    assert.equal(r.status, 503);
    assert.equal(count('d503') - before, 3);
    assert.equal(r.headers['x-sluice-attempts'], '3');
  });
});

describe('retry.sameDeployment: false', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) =>
        fakeModels(
          fake,
          {
            // One deployment that fails once: true (the default) would retry it and succeed.
            single: { deployments: { onlyOnce: { behaviour: 'fail-first=1,fail-status=503' } } },
            pair: {
              deployments: {
                pairA: { behaviour: 'status=503', weight: FIRST },
                pairB: { behaviour: 'status=503', weight: LAST },
              },
            },
          },
          {
            retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5, sameDeployment: false },
            breaker: { volumeThreshold: 1000 },
          },
        ),
    });
  });
  after(() => h.close());

  const call = async (model: string) => {
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] }),
    });
    await res.body.dump();
    return { status: res.statusCode, attempts: res.headers['x-sluice-attempts'] };
  };

  it('a model with one deployment answers its first failure: that deployment is not tried again', async () => {
    const r = await call('single');
    assert.equal(r.status, 503);
    assert.equal(r.attempts, '1');
    assert.equal(h.fake.stats.byBehaviour.onlyOnce, 1);
  });

  it('each deployment is tried at most once, even with attempts left', async () => {
    const r = await call('pair');
    assert.equal(r.status, 503);
    assert.equal(r.attempts, '2', 'maxAttempts 4, but only two deployments');
    assert.equal(h.fake.stats.byBehaviour.pairA, 1);
    assert.equal(h.fake.stats.byBehaviour.pairB, 1);
  });
});

describe('retry budget', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) =>
        fakeModels(
          fake,
          { storm: { deployments: { stormdep: { behaviour: 'status=503' } } } },
          {
            // 0 x traffic + 0.5/s over a 10 s window: five retries in all, whatever the load.
            retry: {
              maxAttempts: 3,
              baseDelayMs: 1,
              maxDelayMs: 2,
              budgetRatio: 0,
              budgetMinPerSecond: 0.5,
              budgetWindowMs: 10_000,
            },
            breaker: { volumeThreshold: 1000 },
          },
        ),
    });
  });
  after(() => h.close());

  it('caps the retries a storm adds: 20 requests make 25 upstream calls, not 60', async () => {
    for (let i = 0; i < 20; i++) {
      const res = await request(`${h.url}/v1/chat/completions`, {
        method: 'POST',
        headers: h.headers(),
        body: JSON.stringify({ model: 'storm', messages: [{ role: 'user', content: 'x' }] }),
      });
      await res.body.dump();
      assert.equal(res.statusCode, 503);
    }
    assert.equal(h.fake.stats.byBehaviour.stormdep, 25);
    const metrics = await (await request(`${h.url}/metrics`)).body.text();
    const line = metrics.split('\n').find((l) => l.startsWith('sluice_retry_budget_exhausted_total{'));
    // Requests 1-2 retry twice, request 3 once and is then refused; requests 4-20 are refused at once.
    assert.equal(line, 'sluice_retry_budget_exhausted_total{deployment="stormdep/storm@stormdep"} 18');
  });
});
