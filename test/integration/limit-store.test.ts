/**
 * The two limit stores keep one semantics: every case below runs on the in-memory store and on a
 * real Redis (Lua scripts), both driven by the same fake clock.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MemoryStore } from '../../src/limits/memory-store.ts';
import { RedisStore } from '../../src/limits/redis-store.ts';
import type { BucketCheck, LimitStore } from '../../src/limits/store.ts';
import { deletePrefix, REDIS_URL, requireRedis, uniquePrefix } from '../helpers/redis.ts';

interface Subject {
  store: LimitStore;
  clock: { now: number };
  key(name: string): string;
}

const prefixes: string[] = [];
const redisStores: RedisStore[] = [];
after(async () => {
  await Promise.all(redisStores.map((s) => s.close()));
  for (const p of prefixes) await deletePrefix(REDIS_URL, p).catch(() => {});
});

const KINDS = {
  memory: async (): Promise<Subject> => {
    const clock = { now: 1_000_000 };
    return { store: new MemoryStore(() => clock.now), clock, key: (n) => `m:{${n}}` };
  },
  redis: async (): Promise<Subject> => {
    const clock = { now: 1_000_000 };
    const prefix = uniquePrefix('store');
    prefixes.push(prefix);
    const store = new RedisStore({ url: REDIS_URL, commandTimeoutMs: 2_000, clock: () => clock.now });
    redisStores.push(store);
    assert.ok(await store.waitUntilReady(2_000), 'redis store connects');
    return { store, clock, key: (n) => `${prefix}:{${n}}` };
  },
};

const bucket = (key: string, over: Partial<BucketCheck> = {}): BucketCheck => ({
  key,
  ratePerMs: 0.002, // 2 per second
  burst: 5,
  cost: 1,
  shadow: false,
  ...over,
});

for (const [kind, make] of Object.entries(KINDS)) {
  describe(`limit store: ${kind}`, () => {
    const setup = async (t: import('node:test').TestContext) => {
      if (kind === 'redis' && !(await requireRedis(t))) return undefined;
      return make();
    };

    test('a new bucket is full; it drains, refuses, and a refusal spends nothing', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const b = bucket(s.key('a'));
      for (let i = 4; i >= 0; i--) {
        const r = await s.store.admit({ buckets: [b] });
        assert.equal(r.allowed, true);
        assert.equal(r.buckets[0]!.remaining, i);
      }
      const refused = await s.store.admit({ buckets: [b] });
      assert.equal(refused.allowed, false);
      assert.equal(refused.buckets[0]!.allowed, false);
      assert.equal(refused.buckets[0]!.retryAfterMs, 500); // one token at 2/s
      assert.equal(refused.buckets[0]!.resetMs, 2_500); // five tokens at 2/s
      s.clock.now += 499;
      assert.equal((await s.store.admit({ buckets: [b] })).allowed, false);
      s.clock.now += 1;
      assert.equal((await s.store.admit({ buckets: [b] })).allowed, true);
    });

    test('refill is continuous and capped at burst', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const b = bucket(s.key('b'), { cost: 5 });
      assert.equal((await s.store.admit({ buckets: [b] })).allowed, true);
      s.clock.now += 1_250; // 2.5 tokens back
      const r = await s.store.admit({ buckets: [bucket(s.key('b'), { cost: 3 })] });
      assert.equal(r.allowed, false);
      assert.equal(r.buckets[0]!.remaining, 2);
      assert.equal(r.buckets[0]!.retryAfterMs, 250);
      s.clock.now += 3_600_000; // an hour idle: full, not more
      const full = await s.store.admit({ buckets: [bucket(s.key('b'), { cost: 0 })] });
      assert.equal(full.buckets[0]!.remaining, 5);
    });

    test('buckets are all or nothing: one refusal charges none of the others', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const big = bucket(s.key('c1'), { burst: 100 });
      const small = bucket(s.key('c2'), { burst: 1 });
      assert.equal((await s.store.admit({ buckets: [big, small] })).allowed, true);
      const r = await s.store.admit({ buckets: [big, small] });
      assert.equal(r.allowed, false);
      assert.deepEqual(
        r.buckets.map((o) => o.allowed),
        [true, false],
      );
      const after = await s.store.admit({ buckets: [bucket(s.key('c1'), { burst: 100, cost: 0 })] });
      assert.equal(after.buckets[0]!.remaining, 99, 'the big bucket paid once, not twice');
    });

    test('a shadow bucket reports a refusal but does not refuse, and is charged only when it admits', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const shadow = bucket(s.key('d1'), { burst: 1, shadow: true });
      const real = bucket(s.key('d2'), { burst: 10 });
      const first = await s.store.admit({ buckets: [shadow, real] });
      assert.equal(first.allowed, true);
      assert.equal(first.buckets[0]!.remaining, 0);
      const second = await s.store.admit({ buckets: [shadow, real] });
      assert.equal(second.allowed, true, 'shadow never refuses');
      assert.equal(second.buckets[0]!.allowed, false, 'but says it would have');
      assert.equal(second.buckets[1]!.remaining, 8);
      s.clock.now += 500; // one token back in the shadow bucket: it was not driven into debt
      const third = await s.store.admit({ buckets: [shadow] });
      assert.equal(third.buckets[0]!.allowed, true);
    });

    test('adjust: a refund never overfills, a charge can leave debt that later requests wait out', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const b = bucket(s.key('e'), { burst: 10, cost: 4 });
      await s.store.admit({ buckets: [b] });
      await s.store.settle({
        adjustments: [{ key: b.key, ratePerMs: b.ratePerMs, burst: b.burst, delta: -100 }],
      });
      let r = await s.store.admit({ buckets: [bucket(b.key, { burst: 10, cost: 0 })] });
      assert.equal(r.buckets[0]!.remaining, 10);
      await s.store.settle({
        adjustments: [{ key: b.key, ratePerMs: b.ratePerMs, burst: b.burst, delta: 14 }],
      }); // 10 - 14 = -4
      r = await s.store.admit({ buckets: [bucket(b.key, { burst: 10, cost: 1 })] });
      assert.equal(r.allowed, false);
      assert.equal(r.buckets[0]!.retryAfterMs, 2_500); // from -4 to 1 at 2/s
    });

    test('leases: at most max live, freed by release, by expiry, and kept by renewal', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const key = s.key('f');
      const lease = (id: string) => ({ key, id, max: 2, ttlMs: 1_000, shadow: false });
      assert.equal((await s.store.admit({ buckets: [], lease: lease('a') })).lease!.inFlight, 1);
      assert.equal((await s.store.admit({ buckets: [], lease: lease('b') })).lease!.inFlight, 2);
      const full = await s.store.admit({ buckets: [], lease: lease('c') });
      assert.equal(full.allowed, false);
      assert.equal(full.lease!.inFlight, 2);
      await s.store.settle({ adjustments: [], release: { key, id: 'a' } });
      assert.equal((await s.store.admit({ buckets: [], lease: lease('c') })).allowed, true);
      s.clock.now += 600;
      await s.store.renew([{ key, id: 'c' }], 1_000); // b is not renewed
      s.clock.now += 500; // b expired at +1000, c lives until +1600
      const r = await s.store.admit({ buckets: [], lease: lease('d') });
      assert.equal(r.allowed, true);
      assert.equal(r.lease!.inFlight, 2, 'c and d');
      assert.equal((await s.store.admit({ buckets: [], lease: lease('e') })).allowed, false);
    });

    test('settle adjusts several buckets and releases a lease in one call', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const a = bucket(s.key('h'), { burst: 10, cost: 5 });
      const b = bucket(`${s.key('h')}:b`, { burst: 10, cost: 5 });
      const lease = { key: `${s.key('h')}:l`, id: 'x', max: 1, ttlMs: 10_000, shadow: false };
      assert.equal((await s.store.admit({ buckets: [a, b], lease })).allowed, true);
      await s.store.settle({
        adjustments: [
          { key: a.key, ratePerMs: a.ratePerMs, burst: a.burst, delta: -3 },
          { key: b.key, ratePerMs: b.ratePerMs, burst: b.burst, delta: 2 },
        ],
        release: { key: lease.key, id: 'x' },
      });
      const r = await s.store.admit({
        buckets: [bucket(a.key, { burst: 10, cost: 0 }), bucket(b.key, { burst: 10, cost: 0 })],
        lease: { ...lease, id: 'y' },
      });
      assert.deepEqual(
        r.buckets.map((o) => o.remaining),
        [8, 3],
      );
      assert.equal(r.lease!.allowed, true, 'the released slot is free');
    });

    test('a full lease set refuses the whole call: its buckets are not charged', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const key = s.key('g');
      const b = bucket(s.key('g'), { burst: 3 });
      const lease = (id: string, shadow = false) => ({ key: `${key}:l`, id, max: 1, ttlMs: 10_000, shadow });
      assert.equal((await s.store.admit({ buckets: [b], lease: lease('x') })).allowed, true);
      const refused = await s.store.admit({ buckets: [b], lease: lease('y') });
      assert.equal(refused.allowed, false);
      assert.equal(refused.lease!.allowed, false);
      const shadowed = await s.store.admit({ buckets: [b], lease: lease('z', true) });
      assert.equal(shadowed.allowed, true, 'a shadow lease never refuses');
      assert.equal(shadowed.lease!.allowed, false);
      assert.equal(shadowed.lease!.inFlight, 1, 'and is not taken when it would not fit');
      assert.equal(shadowed.buckets[0]!.remaining, 1, 'x and z paid; y did not');
    });
  });
}
