/**
 * The limiter layers through the gateway, on the in-memory store (limits-redis.test.ts covers the
 * shared store): token settlement, headers, shadow mode, priority under saturation (fleet shares
 * and the worker shedder), provider outbound budgets, bad priority headers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.ts';
import type { FakeProvider } from '../../src/fake-provider/server.ts';
import { compileRuntime } from '../../src/runtime.ts';
import {
  baseConfig,
  behaviourProviders,
  chatBody,
  type Harness,
  OTHER_TENANT_KEY,
  startHarness,
  waitFor,
} from '../helpers/harness.ts';

const post = (h: Harness, body: string, headers: Record<string, string> = {}) =>
  fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: h.headers(headers), body });

const usageOf = async (res: Response) =>
  ((await res.json()) as { usage: { total_tokens: number } }).usage.total_tokens;
const remainingTokens = (res: Response) => Number(res.headers.get('x-ratelimit-remaining-tokens'));

export async function metric(h: Harness, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('token limits: estimated up front, settled with real usage', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) =>
        withFakeModels(fake, {
          limits: {
            tenants: {
              acme: {
                requests: { limit: 1000, per: 'day' },
                tokens: { limit: 5_000, per: 'day' },
                models: { 'test-model': { tokens: { limit: 50_000, per: 'day', burst: 50_000 } } },
              },
            },
          },
        }),
    });
  });
  after(() => h.close());

  test('a request that used fewer tokens than estimated gets the rest back', async () => {
    const first = await post(h, chatBody({ max_tokens: 1_000 }));
    assert.equal(first.status, 200);
    const estimate = 5_000 - remainingTokens(first);
    const used = await usageOf(first);
    assert.ok(estimate > 1_000, `estimate ${estimate} covers prompt + max_tokens`);
    assert.ok(used < 200, 'the fake provider used far fewer than max_tokens');
    // The tenant-wide bucket (5,000) is tighter than the model's (50,000), so it is reported.
    assert.equal(first.headers.get('x-ratelimit-limit-tokens'), '5000');
    assert.equal(first.headers.get('x-ratelimit-limit-requests'), '1000');
    assert.equal(first.headers.get('x-ratelimit-remaining-requests'), '999');
    assert.match(first.headers.get('x-ratelimit-reset-tokens')!, /^[\d.]+(ms|s)$|m\d+s$/);

    const second = await post(h, chatBody({ max_tokens: 1_000 }));
    assert.equal(second.status, 200);
    await second.arrayBuffer();
    assert.equal(remainingTokens(second), 5_000 - used - estimate, 'first settled at its real usage');
  });

  test('a stream is settled with the usage reported at its end', async () => {
    const probe1 = await post(h, chatBody({ max_tokens: 10 }));
    const usedProbe = await usageOf(probe1);
    const stream = await post(
      h,
      chatBody({ max_tokens: 900, stream: true, stream_options: { include_usage: true } }),
    );
    assert.equal(stream.status, 200);
    const usageLine = (await stream.text()).split('\n').find((l) => l.includes('"usage":{'))!;
    const usedStream = (JSON.parse(usageLine.slice(6)) as { usage: { total_tokens: number } }).usage
      .total_tokens;
    const probe2 = await post(h, chatBody({ max_tokens: 10 }));
    await probe2.arrayBuffer();
    // Both probes carry the same estimate, so between them only real usage was spent.
    assert.equal(remainingTokens(probe2), remainingTokens(probe1) - usedProbe - usedStream);
  });

  test('a request refused upstream gets its whole estimate back', async () => {
    const probe1 = await post(h, chatBody({ max_tokens: 10 }));
    const usedProbe = await usageOf(probe1);
    const failed = await post(h, chatBody({ model: 'bad-model', max_tokens: 2_000 }));
    assert.equal(failed.status, 400);
    await failed.arrayBuffer();
    const probe2 = await post(h, chatBody({ max_tokens: 10 }));
    await probe2.arrayBuffer();
    assert.equal(remainingTokens(probe2), remainingTokens(probe1) - usedProbe);
  });

  test('a request larger than the bucket can ever hold is refused at once, without a retry-after', async () => {
    const res = await post(h, chatBody({ max_tokens: 6_000 }));
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), null);
    const body = (await res.json()) as { error: { code: string; type: string } };
    assert.equal(body.error.code, 'tokens_exceed_limit');
    assert.equal(body.error.type, 'tokens');
  });
});

describe('request limits, shadow mode and the priority header', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        ...baseConfig(fake),
        limits: {
          tenants: {
            acme: { requests: { limit: 3, per: 'day' } },
            batchco: { requests: { limit: 2, per: 'day', shadow: true } },
          },
        },
      }),
    });
  });
  after(() => h.close());

  test('an empty bucket answers 429 rate_limit_exceeded with retry-after and headers', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await post(h, chatBody())).status, 200);
    const res = await post(h, chatBody());
    assert.equal(res.status, 429);
    const body = (await res.json()) as { error: { code: string; type: string } };
    assert.equal(body.error.code, 'rate_limit_exceeded');
    assert.equal(body.error.type, 'requests');
    assert.equal(res.headers.get('retry-after'), '28800'); // one request per 8 h
    assert.equal(res.headers.get('x-ratelimit-remaining-requests'), '0');
    assert.equal(res.headers.get('x-ratelimit-reset-requests'), '24h0m0s');
    assert.equal(h.fake.stats.requests, 3, 'the refused request never reached the provider');
  });

  test('a shadow limit reports refusals and refuses nothing', async () => {
    const batch = { authorization: `Bearer ${OTHER_TENANT_KEY}` };
    for (let i = 0; i < 5; i++) assert.equal((await post(h, chatBody(), batch)).status, 200);
    assert.equal(
      await metric(h, 'sluice_limiter_decisions_total', 'layer="requests",outcome="shadow_refused"'),
      3,
    );
  });

  test('x-sluice-priority must name a class', async () => {
    const res = await post(h, chatBody(), { 'x-sluice-priority': 'urgent' });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { param: string } }).error.param, 'x-sluice-priority');
  });
});

describe('priority under saturation', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) =>
        withFakeModels(fake, {
          limits: {
            worker: {
              sampleIntervalMs: 50,
              maxEventLoopDelayMs: 100,
              escalateAfterSamples: 1,
              recoverAfterSamples: 8,
            },
            fleet: { models: { 'slow-model': { maxInFlight: 4 } } },
            tenants: { batchco: { requests: { limit: 100, per: 'day' } } },
          },
        }),
    });
  });
  after(() => h.close());

  test('fleet: batch is refused once its share is used while critical still passes', async () => {
    const slow = chatBody({ model: 'slow-model' });
    const batch = { authorization: `Bearer ${OTHER_TENANT_KEY}` };
    const held = [post(h, slow, batch), post(h, slow, batch)]; // batch share: 0.5 x 4 = 2
    await waitFor(() => h.fake.stats.inFlight === 2, 3_000, 'two batch requests upstream');
    const refused = await post(h, slow, batch);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'capacity_exceeded');
    // A critical tenant's request marked batch is batch.
    assert.equal((await post(h, slow, { 'x-sluice-priority': 'batch' })).status, 503);
    // acme is critical: it may use all 4 slots, so 2 more fit, and no fifth.
    const critical = [post(h, slow), post(h, slow)];
    await waitFor(() => h.fake.stats.inFlight === 4, 3_000, 'four requests upstream');
    assert.equal((await post(h, slow)).status, 503, 'critical also stops at the full capacity');
    for (const r of await Promise.all([...held, ...critical])) assert.equal(r.status, 200);
    // Slots are released when requests end.
    const last = await post(h, chatBody({ model: 'slow-model' }), batch);
    assert.equal(last.status, 200);
    // batchco paid for its 3 admitted requests; the one the fleet refused was given back.
    assert.equal(last.headers.get('x-ratelimit-remaining-requests'), '97');
    assert.equal(await metric(h, 'sluice_limiter_decisions_total', 'layer="fleet",outcome="refused"'), 3);
  });

  test('worker shedder: a saturated event loop sheds batch first, then standard, critical last', async () => {
    const block = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end) {
        // saturate this process's event loop (the gateway runs in it)
      }
    };
    const batch = { authorization: `Bearer ${OTHER_TENANT_KEY}` };
    const standard = { 'x-sluice-priority': 'standard' };
    // What each class gets must follow the level (another sample may have moved it: read it each time).
    const expectShedding = async () => {
      const level = h.gateway.shedder.level;
      const statuses = [
        (await post(h, chatBody(), batch)).status,
        (await post(h, chatBody(), standard)).status,
        (await post(h, chatBody())).status,
      ];
      assert.deepEqual(
        statuses,
        [level >= 1 ? 503 : 200, level >= 2 ? 503 : 200, level >= 3 ? 503 : 200],
        `level ${level}`,
      );
      return level;
    };
    // Block until a sample sees it (bounded: a loaded machine may need a second block).
    const blockUntil = async (level: number) => {
      for (let i = 0; i < 5 && h.gateway.shedder.level < level; i++) {
        block(250);
        await new Promise((r) => setTimeout(r, 120));
      }
      await waitFor(() => h.gateway.shedder.level >= level, 1_000, `shed level ${level}`);
    };
    await blockUntil(1);
    const shed = await post(h, chatBody(), batch);
    assert.equal(shed.status, 503);
    assert.equal(((await shed.json()) as { error: { code: string } }).error.code, 'server_overloaded');
    assert.equal(shed.headers.get('retry-after'), '2');
    assert.ok((await expectShedding()) >= 1);
    await blockUntil(2);
    assert.ok((await expectShedding()) >= 2);
    // Calm samples bring it back down, one class at a time.
    await waitFor(() => h.gateway.shedder.level === 0, 5_000, 'recovery', 5);
    assert.equal((await post(h, chatBody(), batch)).status, 200);
    assert.ok((await metric(h, 'sluice_limiter_decisions_total', 'layer="worker",outcome="refused"')) >= 3);
  });
});

describe('provider outbound budgets', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) => {
        const base = baseConfig(fake);

        return {
          ...base,
          providers: {
            ...(base.providers as object),
            ...behaviourProviders(fake, { spare: 'tag=spare' }),
          },
          models: {
            'test-model': { deployments: [{ provider: 'fake' }, { provider: 'spare' }] },
            'only-fake': { deployments: [{ provider: 'fake' }] },
          },
          limits: { providers: { fake: { requests: { limit: 2, per: 'hour' } } } },
        };
      },
    });
  });
  after(() => h.close());

  test('a provider out of budget is routed around, and alone it answers 503 with retry-after', async () => {
    // The fake provider's budget is 2 an hour: both go to the model it alone serves.
    for (let i = 0; i < 2; i++) assert.equal((await post(h, chatBody({ model: 'only-fake' }))).status, 200);
    for (let i = 0; i < 10; i++) assert.equal((await post(h, chatBody())).status, 200);
    assert.equal(h.fake.stats.byBehaviour.spare, 10, 'every test-model request went to the spare provider');
    const res = await post(h, chatBody({ model: 'only-fake' }));
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'provider_budget_exhausted');
    assert.equal(res.headers.get('retry-after'), '1800');
    assert.equal(h.fake.stats.requests, 12);
    assert.equal(
      await metric(h, 'sluice_limiter_decisions_total', 'layer="provider_requests",outcome="refused"'),
      1,
    );
  });
});

/** The harness config plus models served with fake-provider behaviours. */
function withFakeModels(fake: FakeProvider, extra: Record<string, unknown>): Record<string, unknown> {
  const base = baseConfig(fake);
  return {
    ...base,
    providers: {
      ...(base.providers as object),
      ...behaviourProviders(fake, { bad: 'status=400,tag=bad', slow: 'headers-delay-ms=1000,tag=slow' }),
    },
    models: {
      ...(base.models as object),
      'bad-model': { deployments: [{ provider: 'bad' }] },
      'slow-model': { deployments: [{ provider: 'slow' }] },
    },
    ...extra,
  };
}

describe('limits follow a config reload', () => {
  test('a shadow limit dark-launched, then enforced by a reload, refuses exactly what it reported', async (t) => {
    const limits = (shadow: boolean) => ({
      tenants: { acme: { requests: { limit: 2, per: 'day', shadow } } },
    });
    let fakeRef: FakeProvider | undefined;
    const h = await startHarness({
      config: (fake) => {
        fakeRef = fake;
        return { ...baseConfig(fake), limits: limits(true) };
      },
    });
    t.after(() => h.close());
    for (let i = 0; i < 4; i++) assert.equal((await post(h, chatBody())).status, 200);
    assert.equal(
      await metric(h, 'sluice_limiter_decisions_total', 'layer="requests",outcome="shadow_refused"'),
      2,
    );
    h.gateway.apply(
      compileRuntime(
        validateConfig(
          { ...baseConfig(fakeRef!), server: { host: '127.0.0.1', port: 0 }, limits: limits(false) },
          {},
        ),
      ),
    );
    // The bucket was charged only for the two it admitted: enforced now, it is empty.
    const res = await post(h, chatBody());
    assert.equal(res.status, 429);
    assert.equal(h.fake.stats.requests, 4);
  });
});

describe('limits on one model only', () => {
  test("a tenant's limits for another model cost this one nothing: no decision, no headers", async (t) => {
    const h = await startHarness({
      config: (fake) => ({
        ...baseConfig(fake),
        limits: { tenants: { acme: { models: { 'test-model': { requests: { limit: 10, per: 'day' } } } } } },
      }),
    });
    t.after(() => h.close());
    const other = await fetch(`${h.url}/v1/embeddings`, {
      method: 'POST',
      headers: h.headers(),
      body: JSON.stringify({ model: 'text-embedding-test', input: 'hi' }),
    });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('x-ratelimit-limit-requests'), null);
    assert.equal(await metric(h, 'sluice_limiter_decisions_total', 'layer="requests",outcome="allowed"'), 0);
    const limited = await post(h, chatBody());
    assert.equal(limited.headers.get('x-ratelimit-remaining-requests'), '9');
    assert.equal(await metric(h, 'sluice_limiter_decisions_total', 'layer="requests",outcome="allowed"'), 1);
  });
});
