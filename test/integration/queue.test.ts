/**
 * The admission queue through the gateway, against the fake provider at a fixed service time:
 * the cap holds upstream, bounds refuse fast with retry-after, critical overtakes batch, waiters
 * that leave never reach the provider, deadlines are kept.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { hashKey } from '../../src/auth/keys.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { FakeProvider } from '../../src/fake-provider/server.ts';
import { compileRuntime } from '../../src/runtime.ts';
import {
  baseConfig,
  chatBody,
  type Harness,
  OTHER_TENANT_KEY,
  startHarness,
  waitFor,
} from '../helpers/harness.ts';

const ADMIN = 'sk-admin-queue-test';

function config(
  fake: FakeProvider,
  queue: Record<string, unknown>,
  model: Record<string, unknown>,
  delayMs = 50,
) {
  const base = baseConfig(fake);
  const origin = fake.baseUrl.replace(/\/v1$/, '');
  return {
    ...base,
    admin: { keys: [hashKey(ADMIN)] },
    providers: {
      ...(base.providers as object),
      // Its own origin (a different host name for the same fake), so its pool is its own.
      q: {
        kind: 'openai',
        baseUrl: `${origin.replace('127.0.0.1', 'localhost')}/fake/headers-delay-ms=${delayMs},tag=q/v1`,
        connections: (model.maxConcurrent as number | undefined) ?? 4,
      },
    },
    models: { ...(base.models as object), 'q-model': { deployments: [{ provider: 'q' }], queue: model } },
    queue,
  };
}

const post = (h: Harness, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: h.headers(headers),
    body: chatBody({ model: 'q-model' }),
    signal,
  });
const codeOf = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;
const BATCH = { authorization: `Bearer ${OTHER_TENANT_KEY}` };

describe('admission queue', () => {
  test('a burst of 5x the cap is served without exceeding the cap upstream', async (t) => {
    const h = await startHarness({ config: (fake) => config(fake, {}, { maxConcurrent: 4, maxQueued: 40 }) });
    t.after(() => h.close());
    const statuses = await Promise.all(Array.from({ length: 20 }, () => post(h).then((r) => r.status)));
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(h.fake.stats.byBehaviour.q, 20);
    assert.equal(h.fake.stats.maxInFlight, 4, 'never more than maxConcurrent upstream');
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    assert.match(metrics, /sluice_queue_wait_seconds_count\{model="q-model"\} 20/);
    assert.match(metrics, /sluice_queue_in_flight\{model="q-model"\} 0/);
  });

  test('past the bound: a fast 503 queue_full with a retry-after from the drain rate', async (t) => {
    const h = await startHarness({
      config: (fake) => config(fake, {}, { maxConcurrent: 2, maxQueued: 6 }, 200),
    });
    t.after(() => h.close());
    // Teach it the service time (200 ms), then burst.
    await Promise.all([post(h), post(h)]);
    const started = performance.now();
    const responses = await Promise.all(Array.from({ length: 12 }, () => post(h)));
    const refused = responses.filter((r) => r.status === 503);
    assert.equal(refused.length, 4, '2 running + 6 waiting admitted, 4 refused');
    for (const r of refused) {
      assert.equal(await codeOf(r), 'queue_full');
      const after = Number(r.headers.get('retry-after'));
      assert.ok(after >= 1 && after <= 5, `retry-after ${after} s from 6 waiting at 2 per 200 ms`);
    }
    assert.equal(responses.filter((r) => r.status === 200).length, 8);
    assert.ok(performance.now() - started < 3_000);
    assert.equal(h.fake.stats.maxInFlight, 2);
  });

  test('batch is refused once its share of the queue is used; critical still queues', async (t) => {
    const h = await startHarness({
      config: (fake) => config(fake, {}, { maxConcurrent: 1, maxQueued: 4 }, 300),
    });
    t.after(() => h.close());
    const held = [post(h, BATCH), post(h, BATCH), post(h, BATCH)]; // 1 running + 2 waiting = batch's 50%
    await waitFor(() => h.gateway.queues.snapshot().find((q) => q.model === 'q-model')!.queued === 2);
    const shed = await post(h, BATCH);
    assert.equal(shed.status, 503);
    assert.equal(await codeOf(shed), 'queue_full');
    const critical = post(h); // acme is critical: room is kept for it
    const order: string[] = [];
    await Promise.all([
      ...held.map((p, i) => p.then((r) => order.push(`batch${i}:${r.status}`))),
      critical.then((r) => order.push(`critical:${r.status}`)),
    ]);
    // The critical request arrived last but was served right after the running one.
    assert.deepEqual(order, ['batch0:200', 'critical:200', 'batch1:200', 'batch2:200']);
  });

  test('a client that disconnects while queued leaves at once and never reaches the provider', async (t) => {
    const h = await startHarness({
      config: (fake) => config(fake, {}, { maxConcurrent: 1, maxQueued: 10 }, 400),
    });
    t.after(() => h.close());
    const running = post(h);
    await waitFor(() => h.fake.stats.inFlight === 1);
    const controllers = Array.from({ length: 5 }, () => new AbortController());
    const waiting = controllers.map((c) => post(h, {}, c.signal).catch(() => 'aborted'));
    await waitFor(() => h.gateway.queues.snapshot().find((q) => q.model === 'q-model')!.queued === 5);
    for (const c of controllers) c.abort();
    await waitFor(() => h.gateway.queues.snapshot().find((q) => q.model === 'q-model')!.queued === 0, 1_000);
    assert.equal((await running).status, 200);
    assert.deepEqual(await Promise.all(waiting), Array(5).fill('aborted'));
    // One more request gets the slot at once.
    assert.equal((await post(h)).status, 200);
    assert.equal(h.fake.stats.byBehaviour.q, 2, 'the five that left never reached the provider');
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    assert.match(metrics, /sluice_queue_refusals_total\{model="q-model",reason="client_gone"\} 5/);
  });

  test('deadlines: refused at once when the wait would pass them; a waiter whose deadline passes leaves', async (t) => {
    const h = await startHarness({
      config: (fake) => config(fake, { maxWaitMs: 250 }, { maxConcurrent: 1, maxQueued: 10 }, 400),
    });
    t.after(() => h.close());
    await post(h); // service time now ~400 ms
    const running = post(h);
    await waitFor(() => h.fake.stats.inFlight === 1);
    // Expected wait ~400 ms > the client's 300 ms deadline: refused now, not served late.
    const started = performance.now();
    const early = await post(h, { 'x-sluice-timeout-ms': '300' });
    assert.ok(performance.now() - started < 100, 'refused at once');
    assert.equal(early.status, 503);
    assert.equal(await codeOf(early), 'queue_wait_exceeds_deadline');
    assert.ok(Number(early.headers.get('retry-after')) >= 1);
    // queue.maxWaitMs is 250: expected ~400 ms, so this one is refused at once too.
    assert.equal(await codeOf(await post(h)), 'queue_wait_exceeds_deadline');
    assert.equal((await running).status, 200);
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    assert.match(metrics, /sluice_queue_refusals_total\{model="q-model",reason="deadline"\} 2/);
    assert.equal(h.fake.stats.byBehaviour.q, 2);
  });

  test('a waiter still in line at its deadline gets 503 queue_timeout and never reaches the provider', async (t) => {
    const h = await startHarness({
      config: (fake) => config(fake, { maxWaitMs: 200 }, { maxConcurrent: 1, maxQueued: 10 }, 600),
    });
    t.after(() => h.close());
    // No service time known yet, so the request is let in line; its wait ends at 200 ms.
    const running = post(h);
    await waitFor(() => h.fake.stats.inFlight === 1);
    const started = performance.now();
    const waited = await post(h);
    const elapsed = performance.now() - started;
    assert.equal(waited.status, 503);
    assert.equal(await codeOf(waited), 'queue_timeout');
    assert.ok(elapsed >= 190 && elapsed < 500, `left after ${Math.round(elapsed)} ms`);
    assert.equal((await running).status, 200);
    assert.equal(h.fake.stats.byBehaviour.q, 1);
  });

  test('queue.enabled: false sends every request upstream at once', async (t) => {
    const h = await startHarness({
      config: (fake) => {
        const c = config(fake, { enabled: false }, { maxConcurrent: 1, maxQueued: 0 }, 200);
        (c.providers as Record<string, { connections: number }>).q!.connections = 4;
        return c;
      },
    });
    t.after(() => h.close());
    const statuses = await Promise.all(Array.from({ length: 3 }, () => post(h).then((r) => r.status)));
    assert.deepEqual(statuses, [200, 200, 200]);
    assert.equal(
      h.fake.stats.maxInFlight,
      3,
      'not capped by the queue (maxConcurrent 1), only by the pool (4)',
    );
  });

  test('a reload that raises maxConcurrent starts waiting requests at once', async (t) => {
    let fakeRef: FakeProvider | undefined;
    const h = await startHarness({
      config: (fake) => {
        fakeRef = fake;
        const c = config(fake, {}, { maxConcurrent: 1, maxQueued: 10 }, 500);
        (c.providers as Record<string, { connections: number }>).q!.connections = 4;
        return c;
      },
    });
    t.after(() => h.close());
    const all = Array.from({ length: 4 }, () => post(h));
    await waitFor(() => h.gateway.queues.snapshot().find((q) => q.model === 'q-model')!.queued === 3);
    const next = config(fakeRef!, {}, { maxConcurrent: 4, maxQueued: 10 }, 500);
    (next.providers as Record<string, { connections: number }>).q!.connections = 4;
    h.gateway.apply(compileRuntime(validateConfig({ ...next, server: { host: '127.0.0.1', port: 0 } }, {})));
    await waitFor(() => h.fake.stats.inFlight === 4, 400, 'all four upstream before the first finished');
    assert.deepEqual(
      (await Promise.all(all)).map((r) => r.status),
      [200, 200, 200, 200],
    );
  });

  test('GET /admin/queues shows each model queue', async (t) => {
    const h = await startHarness({
      config: (fake) => config(fake, {}, { maxConcurrent: 1, maxQueued: 10 }, 300),
    });
    t.after(() => h.close());
    const running = [post(h), post(h, BATCH), post(h, BATCH)];
    await waitFor(() => h.gateway.queues.snapshot().find((q) => q.model === 'q-model')!.queued === 2);
    const res = await fetch(`${h.url}/admin/queues`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(res.status, 200);
    const q = ((await res.json()) as { data: Array<Record<string, unknown>> }).data.find(
      (x) => x.model === 'q-model',
    )!;
    assert.equal(q.maxConcurrent, 1);
    assert.equal(q.inFlight, 1);
    assert.equal(q.queued, 2);
    assert.deepEqual(q.queuedByPriority, { critical: 0, standard: 0, batch: 2 });
    assert.equal(q.maxQueued, 10);
    await Promise.all(running);
  });
});

describe('admission queue: streams and scale', () => {
  test('a stream holds its slot until its last chunk', async (t) => {
    const h = await startHarness({
      config: (fake) => config(fake, {}, { maxConcurrent: 1, maxQueued: 10 }, 0),
      fakeDefaults: { chunks: 5, chunkGapMs: 100 },
    });
    t.after(() => h.close());
    const started = performance.now();
    const stream = fetch(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: chatBody({ model: 'q-model', stream: true }),
    }).then(async (r) => {
      await r.text();
      return performance.now() - started;
    });
    await waitFor(() => h.fake.stats.inFlight === 1);
    const json = await post(h);
    const jsonDone = performance.now() - started;
    assert.equal(json.status, 200);
    const streamDone = await stream;
    assert.ok(
      jsonDone >= streamDone - 5,
      `the JSON request started after the stream ended (${Math.round(jsonDone)} vs ${Math.round(streamDone)} ms)`,
    );
    assert.equal(h.fake.stats.maxInFlight, 1);
  });

  test('50,000 waiting requests stay in bounded memory, the next is refused, and all leave cleanly', async (t) => {
    const { AdmissionQueues } = await import('../../src/queue/queues.ts');
    const { compileRuntime } = await import('../../src/runtime.ts');
    const { validateConfig } = await import('../../src/config/load.ts');
    const { createMetrics } = await import('../../src/telemetry/metrics.ts');
    const runtime = compileRuntime(
      validateConfig(
        {
          providers: { p: { kind: 'openai', baseUrl: 'http://127.0.0.1:9/v1', connections: 1 } },
          models: { m: { deployments: [{ provider: 'p' }], queue: { maxConcurrent: 1, maxQueued: 50_000 } } },
          tenants: { t: { keys: [hashKey('k')] } },
          queue: { maxQueuedTotal: 50_000, maxWaitMs: 3_600_000 },
        },
        {},
      ),
    );
    const queues = new AdmissionQueues(runtime, createMetrics({ defaultMetrics: false }));
    const model = runtime.models.get('m')!;
    // One signal per request, as the gateway gives each (one signal with 50,000 listeners would
    // measure EventTarget, not the queue).
    const controllers: AbortController[] = [];
    const ask = () => {
      const controller = new AbortController();
      controllers.push(controller);
      return queues.acquire({
        model,
        priority: 'critical',
        tenant: 't',
        deadline: performance.now() + 3_600_000,
        signal: controller.signal,
      });
    };
    // Whatever happens, nobody is left waiting (their timers would hold the process).
    t.after(() => {
      for (const c of controllers)
        c.abort(Object.assign(new Error('gone'), { kind: 'client_closed_request' }));
    });
    const first = ask() as { release(): void };
    const gc = fullGc();
    gc();
    const before = process.memoryUsage().heapUsed;
    const waiting: Array<Promise<unknown>> = [];
    for (let i = 0; i < 50_000; i++)
      waiting.push((ask() as Promise<unknown>).catch((e: { code: string }) => e.code));
    gc();
    const perWaiter = (process.memoryUsage().heapUsed - before) / 50_000;
    assert.equal(queues.snapshot()[0]!.queued, 50_000);
    assert.throws(ask, { code: 'queue_full' });
    assert.ok(
      perWaiter < 4_096,
      `${Math.round(perWaiter)} bytes per waiting request (its abort signal, promise and timer included)`,
    );
    for (const c of controllers) c.abort(Object.assign(new Error('gone'), { kind: 'client_closed_request' }));
    const codes = await Promise.all(waiting);
    assert.equal(codes.filter((c) => c === 'client_closed_request').length, 50_000);
    assert.equal(queues.snapshot()[0]!.queued, 0);
    first.release();
    assert.equal(queues.snapshot()[0]!.inFlight, 0);
  });
});

/** A full garbage collection, so heap figures count live objects only. */
function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
