import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Priority } from '../../src/config/defaults.ts';
import { ModelQueue, type QueueSettings, type Waiter } from '../../src/queue/model-queue.ts';

const SETTINGS: QueueSettings = {
  maxConcurrent: 2,
  maxQueued: 10,
  agingMs: 1_000,
  shares: { batch: 0.5, standard: 0.8, critical: 1 },
  maxQueuedPerTenant: 0,
};
const TOTAL = { queued: 0, max: 1_000_000 };
const FAR = 1e12;

function fill(q: ModelQueue<string>, n: number, now = 0) {
  for (let i = 0; i < n; i++) assert.ok('started' in q.enqueue('critical', 't', now, FAR, `run${i}`, TOTAL));
}
const enqueue = (q: ModelQueue<string>, p: Priority, name: string, now = 0, deadline = FAR, tenant = 't') => {
  const r = q.enqueue(p, tenant, now, deadline, name, TOTAL);
  assert.ok('started' in r && !r.started, `${name} waits: ${'refused' in r ? r.refused.reason : 'started'}`);
  return (r as { waiter: Waiter<string> }).waiter;
};
const names = (ws: Waiter<string>[]) => ws.map((w) => w.value);

describe('admission queue (pure, fake clock)', () => {
  it('starts requests while slots are free, then queues them', () => {
    const q = new ModelQueue<string>(SETTINGS);
    assert.deepEqual(q.enqueue('batch', 't', 0, FAR, 'a', TOTAL), { started: true });
    assert.deepEqual(q.enqueue('batch', 't', 0, FAR, 'b', TOTAL), { started: true });
    enqueue(q, 'batch', 'c');
    assert.equal(q.inFlight, 2);
    assert.equal(q.queued, 1);
    const { start } = q.release(10, 10);
    assert.deepEqual(names(start), ['c']);
    assert.equal(q.inFlight, 2);
    assert.equal(q.queued, 0);
  });

  it('orders by priority class, then by arrival', () => {
    const q = new ModelQueue<string>(SETTINGS);
    fill(q, 2);
    enqueue(q, 'batch', 'b1', 0);
    enqueue(q, 'standard', 's1', 1);
    enqueue(q, 'critical', 'c1', 2);
    enqueue(q, 'standard', 's2', 3);
    enqueue(q, 'critical', 'c2', 4);
    const order: string[] = [];
    for (let t = 10; q.queued > 0; t++) order.push(...names(q.release(t, 5).start));
    assert.deepEqual(order, ['c1', 'c2', 's1', 's2', 'b1']);
  });

  it('ages waiting requests one class per agingMs, so batch is not starved', () => {
    const q = new ModelQueue<string>(SETTINGS);
    fill(q, 2);
    enqueue(q, 'batch', 'old-batch', 0);
    enqueue(q, 'critical', 'c1', 1_500);
    // At 1,600 ms the batch request counts as standard: critical still goes first.
    assert.deepEqual(names(q.release(1_600, 100).start), ['c1']);
    enqueue(q, 'critical', 'c2', 1_700);
    // At 2,000 ms it counts as critical and arrived first: it goes before c2.
    assert.deepEqual(names(q.release(2_000, 100).start), ['old-batch']);
    assert.deepEqual(names(q.release(2_001, 100).start), ['c2']);
  });

  it('bounds: each class may fill only its share; critical keeps the rest', () => {
    const q = new ModelQueue<string>({ ...SETTINGS, maxQueued: 10 });
    fill(q, 2);
    for (let i = 0; i < 5; i++) enqueue(q, 'batch', `b${i}`);
    const shed = q.enqueue('batch', 't', 0, FAR, 'b5', TOTAL);
    assert.ok('refused' in shed && shed.refused.reason === 'full', 'batch stops at 50%');
    for (let i = 0; i < 3; i++) enqueue(q, 'standard', `s${i}`);
    assert.ok('refused' in q.enqueue('standard', 't', 0, FAR, 's3', TOTAL), 'standard stops at 80%');
    enqueue(q, 'critical', 'c0');
    enqueue(q, 'critical', 'c1');
    assert.ok('refused' in q.enqueue('critical', 't', 0, FAR, 'c2', TOTAL), 'critical stops at 100%');
    assert.equal(q.queued, 10);
  });

  it('bounds: the instance-wide total and the per-tenant bound', () => {
    const q = new ModelQueue<string>({ ...SETTINGS, maxQueuedPerTenant: 2 });
    fill(q, 2);
    const full = q.enqueue('critical', 't', 0, FAR, 'x', { queued: 50, max: 50 });
    assert.ok('refused' in full && full.refused.reason === 'full');
    enqueue(q, 'critical', 'a1', 0, FAR, 'a');
    enqueue(q, 'critical', 'a2', 0, FAR, 'a');
    const tenant = q.enqueue('critical', 'a', 0, FAR, 'a3', TOTAL);
    assert.ok('refused' in tenant && tenant.refused.reason === 'tenant_full');
    enqueue(q, 'critical', 'b1', 0, FAR, 'b');
  });

  it('refuses at once a request that could not start before its deadline, from recent service times', () => {
    const q = new ModelQueue<string>(SETTINGS);
    fill(q, 2);
    // No service time known yet: nothing to refuse on.
    const w = enqueue(q, 'critical', 'first', 0, 10);
    q.remove(w);
    q.release(0, 1_000); // one service of 1 s: two slots drain one request every 500 ms
    fill(q, 1);
    assert.equal(q.expectedWaitMs(0), 500);
    enqueue(q, 'critical', 'w1', 0, 600); // expected 500 ms: fits
    const late = q.enqueue('critical', 't', 0, 900, 'w2', TOTAL); // second in line: 1,000 ms
    assert.ok('refused' in late && late.refused.reason === 'deadline');
    assert.equal((late as { refused: { expectedWaitMs: number } }).refused.expectedWaitMs, 1_000);
    // A lower class counts only those of its class or higher ahead of it... which is everyone here.
    enqueue(q, 'critical', 'w3', 0, 2_000);
  });

  it('a waiter whose deadline passed is never started: it comes back as expired', () => {
    const q = new ModelQueue<string>(SETTINGS);
    fill(q, 2);
    enqueue(q, 'critical', 'stale', 0, 100);
    enqueue(q, 'critical', 'fresh', 0, 10_000);
    const { start, expired } = q.release(500, 500);
    assert.deepEqual(names(expired), ['stale']);
    assert.deepEqual(names(start), ['fresh']);
  });

  it('a waiter that leaves (client gone) is unlinked at once and never started', () => {
    const q = new ModelQueue<string>(SETTINGS);
    fill(q, 2);
    const a = enqueue(q, 'standard', 'a');
    const b = enqueue(q, 'standard', 'b');
    const c = enqueue(q, 'standard', 'c');
    assert.equal(q.remove(b), true);
    assert.equal(q.remove(b), false, 'only once');
    assert.equal(q.queued, 2);
    assert.deepEqual(names(q.release(1, 1).start), ['a']);
    assert.deepEqual(names(q.release(2, 1).start), ['c']);
    assert.equal(q.remove(a), false, 'a started: no longer queued');
    void c;
  });

  it('a larger maxConcurrent after a reload starts waiters at once', () => {
    const q = new ModelQueue<string>(SETTINGS);
    fill(q, 2);
    enqueue(q, 'batch', 'x');
    enqueue(q, 'batch', 'y');
    q.configure({ ...SETTINGS, maxConcurrent: 4 });
    assert.deepEqual(names(q.fill(1).start), ['x', 'y']);
    assert.equal(q.inFlight, 4);
  });

  it('holds 50,000 waiting requests in bounded memory and refuses the next', () => {
    const q = new ModelQueue<object>({ ...SETTINGS, maxQueued: 50_000 });
    for (let i = 0; i < 2; i++) q.enqueue('critical', 't', 0, FAR, {}, TOTAL);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 50_000; i++) {
      const r = q.enqueue('critical', `tenant${i % 100}`, i, FAR, {}, TOTAL);
      assert.ok('started' in r);
    }
    const grown = process.memoryUsage().heapUsed - before;
    assert.equal(q.queued, 50_000);
    assert.ok('refused' in q.enqueue('critical', 't', 0, FAR, {}, TOTAL), 'the bound holds');
    assert.ok(grown / 50_000 < 1_024, `${Math.round(grown / 50_000)} bytes per waiting request`);
  });
});
