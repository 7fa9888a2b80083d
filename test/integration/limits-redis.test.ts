/**
 * Limits shared through a real Redis: exact across instances, leases that outlive a killed
 * instance only until their TTL, Redis stopped and restarted under traffic, fail-closed tenants.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Pool } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import type { FakeProvider } from '../../src/fake-provider/server.ts';
import {
  baseConfig,
  behaviourProviders,
  chatBody,
  type Harness,
  startHarness,
  TENANT_KEY,
  waitFor,
} from '../helpers/harness.ts';
import { startSluiceProcess } from '../helpers/process.ts';
import {
  deletePrefix,
  hasRedisServer,
  REDIS_URL,
  type RedisServer,
  requireRedis,
  startRedisServer,
  uniquePrefix,
} from '../helpers/redis.ts';

const prefixes: string[] = [];
after(async () => {
  for (const p of prefixes) await deletePrefix(REDIS_URL, p).catch(() => {});
});

function config(fake: FakeProvider, url: string, prefix: string, limits: Record<string, unknown>) {
  const base = baseConfig(fake);
  return {
    ...base,
    providers: {
      ...(base.providers as object),
      ...behaviourProviders(fake, { slow: 'headers-delay-ms=20000' }),
    },
    models: { ...(base.models as object), 'slow-model': { deployments: [{ provider: 'slow' }] } },
    limits: {
      redis: { url, keyPrefix: prefix, commandTimeoutMs: 200, failuresToOpen: 2, cooldownMs: 300 },
      ...limits,
    },
  };
}

const post = (h: { url: string }, body = chatBody(), key = TENANT_KEY) =>
  fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body,
  });

async function metricText(h: Harness): Promise<string> {
  return (await fetch(`${h.url}/metrics`)).text();
}

describe('limits in Redis', () => {
  test('three instances, one Redis: 1,000 concurrent requests against a limit of 100 admit exactly 100', async (t) => {
    if (!(await requireRedis(t))) return;
    const prefix = uniquePrefix('exact');
    prefixes.push(prefix);
    const limits = { tenants: { acme: { requests: { limit: 100, per: 'hour' } } } };
    const gateways = await Promise.all(
      [0, 1, 2].map(() => startHarness({ config: (fake) => config(fake, REDIS_URL, prefix, limits) })),
    );
    t.after(() => Promise.all(gateways.map((g) => g.close())));
    const pools = gateways.map((g) => new Pool(g.url, { connections: 400 }));
    t.after(() => Promise.all(pools.map((p) => p.close())));
    const body = chatBody();
    const statuses = await Promise.all(
      Array.from({ length: 1_000 }, async (_, i) => {
        const res = await pools[i % 3]!.request({
          path: '/v1/chat/completions',
          method: 'POST',
          headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
          body,
        });
        await res.body.dump();
        return res.statusCode;
      }),
    );
    const count = (s: number) => statuses.filter((x) => x === s).length;
    assert.equal(count(200), 100, 'exactly the limit admitted');
    assert.equal(count(429), 900);
    const upstream = gateways.reduce((n, g) => n + g.fake.stats.requests, 0);
    assert.equal(upstream, 100, 'refused requests never reached a provider');
    for (const g of gateways) assert.match(await metricText(g), /sluice_limiter_store\{store="redis"\} 1/);
  });

  test('a concurrency lease of a killed instance expires after its TTL', async (t) => {
    if (!(await requireRedis(t))) return;
    const prefix = uniquePrefix('lease');
    prefixes.push(prefix);
    const limits = { leaseTtlMs: 1_000, tenants: { acme: { concurrency: { max: 1 } } } };
    const survivor = await startHarness({ config: (fake) => config(fake, REDIS_URL, prefix, limits) });
    t.after(() => survivor.close());
    // The instance to kill: a real process with the same limits and Redis.
    const file = join(tmpdir(), `${prefix.replaceAll(':', '-')}.json`);
    await writeFile(
      file,
      JSON.stringify({ ...config(survivor.fake, REDIS_URL, prefix, limits), requestLog: { enabled: false } }),
    );
    const doomed = await startSluiceProcess(['--config', file]);
    t.after(() => doomed.kill('SIGKILL'));
    const hanging = post(doomed, chatBody({ model: 'slow-model' })).catch(() => undefined);
    await waitFor(() => survivor.fake.stats.inFlight === 1, 5_000, 'the slow request upstream');
    const busy = await post(survivor);
    assert.equal(busy.status, 429);
    assert.equal(
      ((await busy.json()) as { error: { code: string } }).error.code,
      'concurrency_limit_exceeded',
    );
    // While the process lives, its renewals keep the slot for longer than one TTL.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal((await post(survivor)).status, 429, 'renewed lease still held');
    doomed.kill('SIGKILL');
    await doomed.exited;
    await hanging;
    const killedAt = Date.now();
    let status = 0;
    while (Date.now() - killedAt < 5_000) {
      status = (await post(survivor)).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 200, 'the dead instance no longer holds the slot');
    assert.ok(Date.now() - killedAt <= 1_600, `freed within the TTL (took ${Date.now() - killedAt} ms)`);
  });

  test('a tenant set to fail closed is refused at once while Redis is unreachable', async (t) => {
    const limits = {
      tenants: { acme: { requests: { limit: 100, per: 'second' }, failureMode: 'closed' } },
    };
    // Nothing listens on port 1: every Redis command fails at once.
    const h = await startHarness({ config: (fake) => config(fake, 'redis://127.0.0.1:1', 'closed', limits) });
    t.after(() => h.close());
    const started = performance.now();
    const res = await post(h);
    assert.ok(performance.now() - started < 1_000, 'no hang on a dead Redis');
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'limiter_unavailable');
    assert.equal(h.fake.stats.requests, 0);
  });

  test('Redis stopped mid-traffic: requests keep flowing on local limits, then limits return to Redis', async (t) => {
    if (!(await hasRedisServer())) {
      if (process.env.CI === 'true') throw new Error('CI: redis-server is not installed');
      t.skip('redis-server binary not found');
      return;
    }
    const redis: RedisServer = await startRedisServer();
    t.after(() => redis.stop());
    const limits = { tenants: { acme: { requests: { limit: 10, per: 'hour' } } } };
    const h = await startHarness({
      config: (fake) => ({
        ...config(fake, redis.url, 'failover', limits),
        admin: { keys: [hashKey('sk-admin-limits-test')] },
      }),
    });
    t.after(() => h.close());
    const admin = async () =>
      (await (
        await fetch(`${h.url}/admin/limits`, { headers: { authorization: 'Bearer sk-admin-limits-test' } })
      ).json()) as { store: string; redisConfigured: boolean; leasesHeld: number };

    for (let i = 0; i < 3; i++) assert.equal((await post(h)).status, 200);
    assert.equal((await post(h)).headers.get('x-ratelimit-remaining-requests'), '6', 'counted in Redis');

    await redis.stop();
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) {
      const started = performance.now();
      statuses.push((await post(h)).status);
      assert.ok(performance.now() - started < 1_000, 'no request hangs on the dead Redis');
    }
    // Locally this (only) instance enforces its whole share: a fresh bucket of 10.
    assert.deepEqual(statuses, [...Array(10).fill(200), ...Array(4).fill(429)]);
    assert.match(await metricText(h), /sluice_limiter_store\{store="local"\} 1/);
    assert.deepEqual(await admin(), {
      ...(await admin()),
      store: 'local',
      redisConfigured: true,
      leasesHeld: 0,
    });
    assert.ok(
      h.logs.some((l) => String(l.msg).startsWith('limits: Redis unreachable')),
      'a log line says limits went local',
    );

    await redis.start(); // empty: this Redis keeps nothing on disk
    let back = false;
    const deadline = Date.now() + 5_000;
    while (!back && Date.now() < deadline) {
      const res = await post(h);
      back = res.headers.get('x-ratelimit-remaining-requests') === '9';
      if (!back) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(back, 'decisions are made in (the restarted, empty) Redis again');
    assert.match(await metricText(h), /sluice_limiter_store\{store="redis"\} 1/);
    assert.equal((await admin()).store, 'redis');
    assert.ok(h.logs.some((l) => String(l.msg).startsWith('limits: Redis is back')));
  });
});
