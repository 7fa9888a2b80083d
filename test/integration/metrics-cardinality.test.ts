/**
 * Label values stay bounded whatever clients send: random models, paths, keys, request ids,
 * trace ids and header values never reach /metrics, and a second round of such traffic adds no
 * series to the first.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { hashKey } from '../../src/auth/keys.ts';
import { baseConfig, chatBody, startHarness } from '../helpers/harness.ts';

const ADMIN = 'sk-admin-cardinality-test';

test('varied input adds no label values: series stop growing, no client string in /metrics', async (t) => {
  const h = await startHarness({
    config: (fake) => ({
      ...baseConfig(fake),
      admin: { keys: [hashKey(ADMIN)] },
      // 25 unknown keys a round from one address would block it part-way (auth-failures.test.ts),
      // and which routes meet the 429 would then depend on timing; this test is about labels.
      server: { authFailures: { burst: 0 } },
    }),
  });
  t.after(() => h.close());
  const markers: string[] = [];
  const marker = () => {
    const m = `zq${randomBytes(6).toString('hex')}`;
    markers.push(m);
    return m;
  };
  const send = async (url: string, init: RequestInit) => {
    const r = await fetch(`${h.url}${url}`, init);
    await r.arrayBuffer();
    return r.status;
  };
  const round = async () => {
    for (let i = 0; i < 25; i++) {
      await Promise.all([
        // An unknown model, a bad body field, odd headers.
        send('/v1/chat/completions', {
          method: 'POST',
          headers: h.headers({ 'x-request-id': marker(), 'x-sluice-priority': marker() }),
          body: chatBody({ model: marker() }),
        }),
        // A good request with a caller's request id, trace and deadline.
        send('/v1/chat/completions', {
          method: 'POST',
          headers: h.headers({
            'x-request-id': marker(),
            traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`,
            'x-sluice-timeout-ms': String(10_000 + i),
            'user-agent': marker(),
          }),
          body: chatBody({ user: marker(), messages: [{ role: 'user', content: marker() }] }),
        }),
        send('/v1/chat/completions', {
          method: 'POST',
          headers: h.headers({ 'x-request-id': marker() }),
          body: chatBody({ stream: true }),
        }),
        // Unknown paths: passed through, or 404.
        send(`/v1/${marker()}`, { method: 'GET', headers: h.headers() }),
        send(`/${marker()}/${marker()}?${marker()}=1`, { method: 'GET', headers: h.headers() }),
        // A key that is nobody's, and an admin read with odd parameters.
        send('/v1/chat/completions', {
          method: 'POST',
          headers: { authorization: `Bearer sk-${marker()}`, 'content-type': 'application/json' },
          body: chatBody(),
        }),
        send(`/admin/queues?${marker()}=${marker()}`, { headers: { authorization: `Bearer ${ADMIN}` } }),
        send('/v1/embeddings', {
          method: 'POST',
          headers: h.headers(),
          body: JSON.stringify({ model: 'text-embedding-test', input: marker() }),
        }),
      ]);
    }
  };
  const series = async () => {
    const text = await (await fetch(`${h.url}/metrics`)).text();
    return { text, count: text.split('\n').filter((l) => l.startsWith('sluice_')).length };
  };

  await series(); // the scrape itself is a request with series of its own
  await round();
  const first = await series();
  await round();
  const second = await series();
  assert.ok(first.count > 100, `series after the first round: ${first.count}`);
  const names = (text: string) =>
    new Set(
      text
        .split('\n')
        .filter((l) => l.startsWith('sluice_'))
        .map((l) => l.slice(0, l.lastIndexOf(' '))),
    );
  const added = [...names(second.text)].filter((s) => !names(first.text).has(s));
  assert.deepEqual(added, [], 'the second round of different strings added no series');
  assert.equal(second.count, first.count);
  const leaked = markers.filter((m) => second.text.includes(m));
  assert.deepEqual(leaked, [], 'no client-chosen string is a label value');
  assert.ok(markers.length > 400);
});
