/** Streams pass through as they arrive, under backpressure, and end well-formed whatever happens. */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import type { FakeProvider } from '../../src/fake-provider/server.ts';
import { type Harness, startHarness, TENANT_KEY, waitFor } from '../helpers/harness.ts';

/** One provider per fault, all on the same fake provider, selected by the path in the base URL. */
function config(fake: FakeProvider): Record<string, unknown> {
  const providers: Record<string, unknown> = {};
  const models: Record<string, unknown> = {};
  const faults: Record<string, string> = {
    paced: 'chunks=5,chunk-gap-ms=150',
    big: 'chunks=4000,chunk-size=16384',
    stall: 'stall-after=2',
    cut: 'disconnect-after=2',
  };
  for (const [name, behaviour] of Object.entries(faults)) {
    providers[name] = { kind: 'openai', baseUrl: `${fake.origin}/fake/${behaviour}/v1`, connections: 8 };
    models[name] = { deployments: [{ provider: name }] };
  }
  // Headers at once, first token late: the first-token clock must cover the wait after the headers.
  providers.late = {
    kind: 'openai',
    baseUrl: `${fake.origin}/fake/first-chunk-delay-ms=3000/v1`,
    timeouts: { connectTimeoutMs: 200, firstTokenTimeoutMs: 300, chunkGapTimeoutMs: 5000 },
  };
  models.late = { deployments: [{ provider: 'late' }] };
  providers.gap = {
    kind: 'openai',
    baseUrl: `${fake.origin}/fake/stall-after=2/v1`,
    timeouts: { connectTimeoutMs: 200, firstTokenTimeoutMs: 300, chunkGapTimeoutMs: 300 },
  };
  models.gap = { deployments: [{ provider: 'gap' }] };
  providers.total = {
    kind: 'openai',
    baseUrl: `${fake.origin}/fake/chunks=50,chunk-gap-ms=100/v1`,
    timeouts: {
      connectTimeoutMs: 200,
      firstTokenTimeoutMs: 300,
      chunkGapTimeoutMs: 300,
      totalTimeoutMs: 500,
    },
  };
  models.total = { deployments: [{ provider: 'total' }] };
  return { providers, models, tenants: { acme: { keys: [hashKey(TENANT_KEY)] } } };
}

const streamBody = (model: string) =>
  JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'hello' }] });

describe('streaming', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ config });
  });
  after(() => h.close());

  it('relays each chunk as it arrives (no buffering), with SSE headers', async () => {
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: streamBody('paced'),
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(res.headers['x-accel-buffering'], 'no');
    assert.equal(res.headers['cache-control'], 'no-cache');
    const arrivals: number[] = [];
    let text = '';
    for await (const chunk of res.body) {
      const s = chunk.toString();
      if (s.includes('"content"')) arrivals.push(performance.now());
      text += s;
    }
    assert.match(text, /data: \[DONE\]\n\n$/);
    assert.ok(arrivals.length >= 4, `content arrived in ${arrivals.length} reads, expected one per chunk`);
    // The fake spaces 5 chunks 150 ms apart: buffered relaying would deliver them all at once.
    assert.ok(
      arrivals.at(-1)! - arrivals[0]! > 400,
      'chunks were spread over time as the provider sent them',
    );
  });

  it('a slow client applies backpressure to the upstream instead of growing memory', async () => {
    // A raw socket that sends the request and then reads nothing: the kernel buffers fill,
    // Sluice's writes return false, and the fake provider ends up waiting for 'drain'.
    const socket = connect(Number(new URL(h.url).port), '127.0.0.1');
    socket.pause();
    const body = streamBody('big');
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TENANT_KEY}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    try {
      // Socket buffers on both legs absorb a few MB, then everything stops: wait for the plateau.
      let last = -1;
      await waitFor(
        () => {
          const now = h.fake.stats.bytesWritten;
          const stable = now === last && h.fake.stats.waitingForDrain === 1;
          last = now;
          return stable;
        },
        10_000,
        'the fake to stall on backpressure',
        250,
      );
      const total = 4000 * 16384;
      assert.ok(last < total / 4, `fake wrote ${last} of ${total} bytes to a client that reads nothing`);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(h.fake.stats.bytesWritten, last, 'nothing more is written while the client reads nothing');
    } finally {
      socket.destroy();
    }
    await waitFor(() => h.fake.stats.waitingForDrain === 0, 5_000, 'the upstream call to be aborted');
  });

  it('a client that disconnects mid-stream aborts the upstream call at once', async () => {
    const abortedBefore = h.fake.stats.aborted;
    const controller = new AbortController();
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: streamBody('stall'),
      signal: controller.signal,
    });
    let seen = '';
    for await (const chunk of res.body) {
      seen += chunk.toString();
      if ((seen.match(/"content"/g) ?? []).length >= 2) break;
    }
    controller.abort();
    const t0 = performance.now();
    await waitFor(() => h.fake.stats.aborted === abortedBefore + 1, 2_000, 'the fake to see the abort');
    assert.ok(performance.now() - t0 < 1_000);
    await waitFor(() => h.logs.some((l) => l.code === 'client_closed_request' && l.model === 'stall'));
    const line = h.logs.find((l) => l.code === 'client_closed_request' && l.model === 'stall')!;
    assert.equal(line.status, 499);
  });

  it('a provider that drops the connection mid-stream ends the stream with an SSE error event', async () => {
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: streamBody('cut'),
    });
    assert.equal(res.statusCode, 200);
    const text = await res.body.text();
    const events = text.trim().split('\n\n');
    assert.equal(
      events.filter((e) => e.includes('"content"')).length,
      2,
      'the two chunks sent before the cut',
    );
    const last = JSON.parse(events.at(-1)!.replace(/^data: /, '')) as {
      error: { code: string; type: string };
    };
    assert.equal(last.error.code, 'upstream_stream_interrupted');
    assert.ok(!text.includes('[DONE]'), 'no [DONE]: the answer is incomplete');
    await waitFor(() => h.logs.some((l) => l.model === 'cut' && l.truncated === true));
  });

  it('headers early but no first token within firstTokenTimeoutMs -> a 504 response, not a broken stream', async () => {
    const t0 = performance.now();
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: streamBody('late'),
    });
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    assert.equal(
      res.statusCode,
      504,
      'nothing was sent before the first token, so the status can still say so',
    );
    assert.equal(body.error.code, 'first_token_timeout');
    assert.ok(performance.now() - t0 < 2_000, 'fired on the first-token clock, not the chunk-gap one');
  });

  it('a stream that stalls past chunkGapTimeoutMs ends with a chunk_gap_timeout error event', async () => {
    const t0 = performance.now();
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: streamBody('gap'),
    });
    const text = await res.body.text();
    const elapsed = performance.now() - t0;
    assert.match(text, /"code":"chunk_gap_timeout"/);
    assert.ok(elapsed >= 250 && elapsed < 3_000, `ended after ${elapsed} ms`);
  });

  it('totalTimeoutMs cuts a long stream and says which phase timed out', async () => {
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: streamBody('total'),
    });
    const text = await res.body.text();
    assert.match(text, /"code":"total_timeout"/);
    assert.match(text, /total timeout/);
  });
});
