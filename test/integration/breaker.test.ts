/**
 * Circuit breakers per deployment: a 503 storm opens one, traffic moves to the other region, a
 * probe after the cooldown closes it once the provider recovers, and with every breaker open
 * the gateway fails fast with 503 and a retry-after.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { type Harness, startHarness, waitFor } from '../helpers/harness.ts';
import { FIRST, fakeModels, LAST } from '../helpers/models.ts';

const ADMIN_KEY = 'sk-admin-breakers-test';

describe('circuit breakers', () => {
  let h: Harness;
  const count = (name: string) => h.fake.stats.byBehaviour[name] ?? 0;
  before(async () => {
    h = await startHarness({
      config: (fake) =>
        fakeModels(
          fake,
          {
            // Region eu is preferred by weight but down; us is the fallback region.
            regional: {
              deployments: {
                eu: { behaviour: 'status=503', weight: FIRST },
                us: { weight: LAST },
              },
            },
            // Fails five times, then recovers.
            recovering: {
              deployments: {
                flappy: { behaviour: 'fail-first=5,fail-status=503', weight: FIRST },
                backup: { weight: LAST },
              },
            },
            lonely: { deployments: { dead: { behaviour: 'status=503' } } },
          },
          {
            retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
            // The cooldown outlasts the first test's 20 requests even on a loaded CI machine.
            breaker: { volumeThreshold: 5, errorThresholdPercent: 50, cooldownMs: 1_500, windowMs: 10_000 },
            admin: { keys: [hashKey(ADMIN_KEY)] },
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
    const body = (await res.body.json()) as { error?: { code: string; message: string } };
    return { status: res.statusCode, headers: res.headers, body };
  };
  const breakers = async () => {
    const res = await request(`${h.url}/admin/breakers`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    assert.equal(res.statusCode, 200);
    const body = (await res.body.json()) as {
      data: Array<{ deployment: string; state: string; failures: number }>;
    };
    return new Map(body.data.map((b) => [b.deployment, b]));
  };

  it('a 503 storm opens the breaker and traffic moves to the other region', async () => {
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await call('regional'));
    assert.ok(
      results.every((r) => r.status === 200),
      'every request answered (by retrying on us)',
    );
    // eu gets the first five (the window's minimum volume), then its breaker is open.
    assert.equal(count('eu'), 5);
    assert.equal(count('us'), 20);
    for (const r of results.slice(5)) {
      assert.equal(r.headers['x-sluice-attempts'], '1', 'no more wasted attempts on eu');
      assert.equal(r.headers['x-sluice-deployment'], 'us/regional@us');
    }
    const state = await breakers();
    assert.equal(state.get('eu/regional@eu')?.state, 'open');
    assert.equal(state.get('us/regional@us')?.state, 'closed');
    const metrics = await (await request(`${h.url}/metrics`)).body.text();
    assert.ok(metrics.includes('sluice_breaker_state{deployment="eu/regional@eu"} 2'));
  });

  it('after the cooldown one probe goes through and closes the breaker when the provider has recovered', async () => {
    for (let i = 0; i < 6; i++) await call('recovering');
    assert.equal(count('flappy'), 5);
    assert.equal((await breakers()).get('flappy/recovering@flappy')?.state, 'open');
    const backupBefore = count('backup');
    await new Promise((r) => setTimeout(r, 1_600));
    assert.equal((await breakers()).get('flappy/recovering@flappy')?.state, 'half_open');
    const probe = await call('recovering');
    assert.equal(probe.status, 200);
    assert.equal(
      probe.headers['x-sluice-deployment'],
      'flappy/recovering@flappy',
      'the probe went to the recovered deployment',
    );
    assert.equal((await breakers()).get('flappy/recovering@flappy')?.state, 'closed');
    for (let i = 0; i < 5; i++)
      assert.equal((await call('recovering')).headers['x-sluice-deployment'], 'flappy/recovering@flappy');
    assert.equal(count('backup'), backupBefore, 'the backup is not needed any more');
  });

  it('with every deployment open it fails fast: 503, retry-after, and no upstream call', async () => {
    for (let i = 0; i < 3; i++) await call('lonely'); // 2 attempts each: the breaker opens at 5
    await waitFor(() => h.fake.stats.byBehaviour.dead === 5);
    const before = count('dead');
    const r = await call('lonely');
    assert.equal(r.status, 503);
    assert.equal(r.body.error?.code, 'deployments_unavailable');
    assert.match(r.body.error!.message, /'lonely'/);
    const retryAfter = Number(r.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 2, `retry-after ${retryAfter} s for a 1.5 s cooldown`);
    assert.equal(count('dead'), before, 'failed fast, nothing sent upstream');
  });

  it('/admin/breakers needs the admin key', async () => {
    const none = await request(`${h.url}/admin/breakers`);
    assert.equal(none.statusCode, 401);
    await none.body.dump();
    const tenant = await request(`${h.url}/admin/breakers`, { headers: h.headers() });
    assert.equal(tenant.statusCode, 401, 'a tenant key is not an admin key');
    await tenant.body.dump();
  });
});
