/**
 * The timeout ladder and fallback routing end to end: each phase's timeout fires on its own
 * clock, a failure before the first byte falls back to another model, a failure after it ends
 * the stream with an SSE error (never a replay), and the client's own deadline bounds it all.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type Blackhole, startBlackhole } from '../helpers/blackhole.ts';
import { type Harness, startHarness } from '../helpers/harness.ts';
import { fakeModels } from '../helpers/models.ts';

const FAST = {
  connectTimeoutMs: 200,
  firstTokenTimeoutMs: 300,
  chunkGapTimeoutMs: 300,
  totalTimeoutMs: 5_000,
};

describe('timeouts and fallback', () => {
  let h: Harness;
  let hole: Blackhole;
  let hole2: Blackhole;
  const count = (name: string) => h.fake.stats.byBehaviour[name] ?? 0;
  before(async () => {
    hole = await startBlackhole();
    hole2 = await startBlackhole();
    h = await startHarness({
      config: (fake) =>
        fakeModels(
          fake,
          {
            backup: { deployments: { good: {} } },
            big: { deployments: { bigctx: {} } },
            blackholed: {
              deployments: { nowhere: { baseUrl: `http://127.0.0.1:${hole.port}/v1`, timeouts: FAST } },
              fallbacks: ['backup'],
            },
            blackholedAlone: {
              deployments: { nowhere2: { baseUrl: `http://127.0.0.1:${hole.port}/v1`, timeouts: FAST } },
            },
            // A provider with a generous connect timeout; the request's own deadlines are shorter.
            blackholedPatient: {
              deployments: {
                nowhere3: {
                  // An origin of its own: providers sharing one share a pool and its shortest connect timeout.
                  baseUrl: `http://127.0.0.1:${hole2.port}/v1`,
                  timeouts: { connectTimeoutMs: 5_000, firstTokenTimeoutMs: 5_000, chunkGapTimeoutMs: 5_000 },
                },
              },
            },
            slowFirstToken: {
              deployments: { sleepy: { behaviour: 'first-chunk-delay-ms=5000', timeouts: FAST } },
              fallbacks: ['backup'],
            },
            stallsMidway: {
              deployments: { staller: { behaviour: 'chunks=6,stall-after=3', timeouts: FAST } },
              fallbacks: ['backup'],
            },
            cutMidway: {
              deployments: { cutter: { behaviour: 'disconnect-after=2' } },
              fallbacks: ['backup'],
            },
            small: {
              deployments: { smallctx: { behaviour: 'status=400,error-code=context_length_exceeded' } },
              contextFallback: 'big',
            },
            slowHeaders: { deployments: { slowpoke: { behaviour: 'headers-delay-ms=3000' } } },
          },
          { retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 }, breaker: { volumeThreshold: 1000 } },
        ),
    });
  });
  after(async () => {
    await h.close();
    await hole.close();
    await hole2.close();
  });

  const post = (model: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
    request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(headers),
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }], ...extra }),
    });

  it('a hanging connect is bounded by the client deadline, not only the pool connect timeout', async () => {
    const t0 = performance.now();
    const res = await post('blackholedPatient', {}, { 'x-sluice-timeout-ms': '500' });
    const elapsed = performance.now() - t0;
    const body = (await res.body.json()) as { error: { code: string } };
    assert.equal(res.statusCode, 504);
    assert.equal(body.error.code, 'total_timeout');
    assert.ok(elapsed < 5_000, `answered after ${Math.round(elapsed)} ms, at the 5 s connect timeout`);
  });

  it('a connect timeout (blackholed port) fails within connectTimeoutMs and falls back', async () => {
    const t0 = performance.now();
    const res = await post('blackholed');
    const elapsed = performance.now() - t0;
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-sluice-fallback'], 'backup');
    assert.equal(res.headers['x-sluice-deployment'], 'good/backup@good');
    assert.ok(elapsed >= 190 && elapsed < 800, `took ${elapsed} ms`);
  });

  it('with nowhere to go, a connect timeout is a 504 connect_timeout', async () => {
    const res = await post('blackholedAlone');
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    assert.equal(res.statusCode, 504);
    assert.equal(body.error.code, 'connect_timeout');
    assert.equal(res.headers['x-sluice-attempts'], '3', 'transient: retried up to maxAttempts');
  });

  it('no first token within firstTokenTimeoutMs falls back before anything reached the client', async () => {
    const t0 = performance.now();
    const res = await post('slowFirstToken', { stream: true });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-sluice-fallback'], 'backup');
    assert.match(text, /data: \[DONE\]\n\n$/);
    assert.ok(!text.includes('"error"'));
    assert.ok(performance.now() - t0 < 2_500);
    assert.ok(count('sleepy') >= 1);
  });

  it('a stall after the first token ends the stream with an SSE error and is never replayed', async () => {
    const before = { staller: count('staller'), good: count('good') };
    const res = await post('stallsMidway', { stream: true });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.equal((text.match(/"content"/g) ?? []).length, 3);
    assert.match(text, /data: \{"error":\{[^\n]*"code":"chunk_gap_timeout"/);
    assert.equal(count('staller') - before.staller, 1, 'one upstream call');
    assert.equal(count('good') - before.good, 0, 'no fallback after bytes were sent');
  });

  it('a disconnect after the first token likewise: one SSE error event, one upstream call', async () => {
    const before = count('cutter');
    const res = await post('cutMidway', { stream: true });
    const text = await res.body.text();
    assert.match(text, /"code":"upstream_stream_interrupted"/);
    assert.equal(count('cutter') - before, 1);
  });

  it('a context-length error falls back to the configured larger-context model', async () => {
    const res = await post('small');
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-sluice-deployment'], 'bigctx/big@bigctx');
    assert.equal(res.headers['x-sluice-attempts'], '2');
    assert.equal(count('smallctx'), 1);
  });

  it("the client's x-sluice-timeout-ms bounds the whole request", async () => {
    const t0 = performance.now();
    const res = await post('slowHeaders', {}, { 'x-sluice-timeout-ms': '400' });
    const body = (await res.body.json()) as { error: { code: string } };
    const elapsed = performance.now() - t0;
    assert.equal(res.statusCode, 504);
    assert.equal(body.error.code, 'total_timeout');
    assert.ok(elapsed >= 390 && elapsed < 1_500, `took ${elapsed} ms`);
  });

  it('a malformed x-sluice-timeout-ms is a 400 naming the header', async () => {
    for (const value of ['0', '-5', 'soon', '1.5', '999999999999']) {
      const res = await post('backup', {}, { 'x-sluice-timeout-ms': value });
      const body = (await res.body.json()) as { error: { code: string; param: string } };
      assert.equal(res.statusCode, 400, value);
      assert.equal(body.error.param, 'x-sluice-timeout-ms');
    }
  });
});
