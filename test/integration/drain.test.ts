/**
 * A drain that reaches its timeout with requests still running: never a silent cut. A stream that
 * is relaying gets one SSE error event (`shutting_down`) and ends properly; a request waiting on
 * its provider, or in the admission queue, is answered 503 `shutting_down`; the upstream calls
 * are aborted; the access log, the metrics and the request-log row say Sluice cut them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import {
  baseConfig,
  behaviourProviders,
  chatBody,
  startHarness,
  TENANT_KEY,
  waitFor,
} from '../helpers/harness.ts';
import { createTestDatabase, requirePostgres } from '../helpers/postgres.ts';
import { cleanups, openTestLog } from '../helpers/request-log.ts';

test('at the drain timeout, open requests end with shutting_down: an SSE error event or a 503', async (t) => {
  const defer = cleanups(t);
  if (!(await requirePostgres(t))) return;
  const created = await createTestDatabase();
  defer(() => created.drop());
  const { requestLog } = await openTestLog(defer, { url: created.url, flushIntervalMs: 20 });
  await waitFor(() => requestLog.stats().schemaReady, 20_000, 'schema');

  const h = await startHarness({
    requestLog,
    config: (fake) => {
      const base = baseConfig(fake);
      const origin = fake.baseUrl.replace(/\/v1$/, '');
      return {
        ...base,
        providers: {
          ...(base.providers as object),
          // A long stream: 200 chunks, 50 ms apart (10 s), and a provider that answers in 20 s.
          ...behaviourProviders(fake, { slow: 'chunks=200,chunk-gap-ms=50', late: 'headers-delay-ms=20000' }),
          // Its own origin (a pool of its own) for a model with one slot.
          single: {
            kind: 'openai',
            baseUrl: `${origin.replace('127.0.0.1', 'localhost')}/fake/headers-delay-ms=20000/v1`,
            connections: 1,
          },
        },
        models: {
          ...(base.models as object),
          'slow-model': { deployments: [{ provider: 'slow' }] },
          'late-model': { deployments: [{ provider: 'late' }] },
          'one-slot': { deployments: [{ provider: 'single' }], queue: { maxConcurrent: 1, maxQueued: 4 } },
        },
      };
    },
  });
  defer(() => h.fake.close());
  const post = (model: string, stream = false) =>
    request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: chatBody({ model, stream }),
    });

  const stream = await post('slow-model', true);
  assert.equal(stream.statusCode, 200);
  let text = '';
  const reading = (async () => {
    for await (const chunk of stream.body) text += chunk.toString();
  })();
  await waitFor(() => text.includes('"content"'), 5_000, 'the first chunk');
  const late = post('late-model');
  const holder = post('one-slot');
  await waitFor(() => h.gateway.queues.snapshot().some((q) => q.model === 'one-slot' && q.inFlight === 1));
  const queued = post('one-slot');
  await waitFor(() => h.gateway.queues.snapshot().some((q) => q.model === 'one-slot' && q.queued === 1));
  await waitFor(() => h.fake.stats.inFlight === 3, 5_000, 'three calls upstream');

  await h.gateway.shutdown(300);

  // The stream: the chunks so far, then exactly one well-formed error event, then its end.
  await reading;
  const events = text.trim().split('\n\n');
  const last = JSON.parse(events.at(-1)!.replace(/^data: /, '')) as {
    error: { message: string; type: string; param: null; code: string };
  };
  assert.equal(last.error.code, 'shutting_down');
  assert.equal(last.error.type, 'api_error');
  assert.equal(events.filter((e) => e.includes('"error"')).length, 1);
  assert.ok(!text.includes('[DONE]'), 'no [DONE]: the answer is incomplete');
  assert.ok(
    events.slice(0, -1).every((e) => e.startsWith('data: {"id"')),
    'whole chunks before it',
  );

  // The ones whose response had not started: 503 in OpenAI's shape.
  for (const pending of [late, holder, queued]) {
    const res = await pending;
    assert.equal(res.statusCode, 503);
    const body = (await res.body.json()) as { error: { code: string; type: string } };
    assert.equal(body.error.code, 'shutting_down');
    assert.equal(body.error.type, 'api_error');
  }

  // Every upstream call was aborted (the fake saw its client go away).
  await waitFor(() => h.fake.stats.inFlight === 0 && h.fake.stats.aborted === 3, 5_000, 'upstream aborted');

  // The access log: Sluice cut them, not the client.
  const lines = h.logs.filter((l) => l.msg === 'request' && String(l.model ?? '').length > 0);
  const byModel = (model: string) => lines.filter((l) => l.model === model);
  assert.deepEqual(
    byModel('slow-model').map((l) => [l.status, l.code, l.truncated, l.stream]),
    [[503, 'shutting_down', true, true]],
  );
  for (const model of ['late-model', 'one-slot']) {
    for (const l of byModel(model)) assert.deepEqual([l.status, l.code], [503, 'shutting_down'], model);
  }
  assert.equal(byModel('one-slot').length, 2);
  assert.ok(!lines.some((l) => l.code === 'client_closed_request'), 'nothing logged as the client leaving');
  assert.ok(
    h.logs.some((l) => l.msg === 'drain timeout reached; ending the requests still running' && l.cut === 4),
  );

  const metrics = await h.gateway.metrics.registry.metrics();
  assert.match(metrics, /sluice_streams_truncated_total\{deployment="[^"]+",code="shutting_down"\} 1/);
  assert.match(
    metrics,
    /sluice_requests_total\{route="\/v1\/chat\/completions",model="slow-model",status="503",code="shutting_down"\} 1/,
  );

  // The request-log rows say the same.
  await waitFor(() => requestLog.writer.stats().buffered === 0 && requestLog.writer.stats().writing === 0);
  const rows = await requestLog.db.query<{
    model: string;
    status: number;
    error_code: string;
    truncated: boolean;
  }>('SELECT model, status, error_code, truncated FROM request_log ORDER BY model');
  assert.deepEqual(
    rows.map((r) => [r.model, r.status, r.error_code, r.truncated]),
    [
      ['late-model', 503, 'shutting_down', false],
      ['one-slot', 503, 'shutting_down', false],
      ['one-slot', 503, 'shutting_down', false],
      ['slow-model', 503, 'shutting_down', true],
    ],
  );
});

test('a drain that ends in time cuts nothing', async (t) => {
  const h = await startHarness({
    config: (fake) => ({
      ...baseConfig(fake),
      providers: {
        ...(baseConfig(fake).providers as object),
        ...behaviourProviders(fake, { paced: 'chunks=5,chunk-gap-ms=40' }),
      },
      models: { ...(baseConfig(fake).models as object), paced: { deployments: [{ provider: 'paced' }] } },
    }),
  });
  t.after(() => h.fake.close());
  const res = await request(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: h.headers(),
    body: chatBody({ model: 'paced', stream: true }),
  });
  const text = res.body.text();
  await h.gateway.shutdown(5_000);
  assert.match(await text, /data: \[DONE\]\n\n$/);
  assert.ok(!h.logs.some((l) => String(l.msg).startsWith('drain timeout')));
  assert.ok(h.logs.some((l) => l.msg === 'request' && l.model === 'paced' && l.status === 200 && !l.code));
});

test('a pass-through request still waiting at the drain timeout gets 503 shutting_down', async (t) => {
  const h = await startHarness();
  t.after(() => h.fake.close());
  // The harness lets acme through to /v1/files; the fake provider answers in 20 s.
  const pending = request(`${h.url}/v1/files`, {
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'x-fake-headers-delay-ms': '20000' },
  });
  await waitFor(() => h.fake.stats.inFlight === 1, 5_000, 'the call upstream');
  await h.gateway.shutdown(300);
  const res = await pending;
  assert.equal(res.statusCode, 503);
  const body = (await res.body.json()) as { error: { code: string } };
  assert.equal(body.error.code, 'shutting_down');
  await waitFor(() => h.fake.stats.inFlight === 0 && h.fake.stats.aborted === 1, 5_000, 'upstream aborted');
  const line = h.logs.find((l) => l.msg === 'request' && l.route === '/v1/files');
  assert.deepEqual([line?.status, line?.code], [503, 'shutting_down']);
});
