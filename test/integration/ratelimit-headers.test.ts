/**
 * The x-ratelimit-* headers mean what OpenAI's mean, read by the official SDK through a real
 * gateway: `limit` is the rate per minute (never the bucket's burst), `remaining` what may be sent
 * now, `reset` the time until the bucket is back to its initial (full) state.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { baseConfig, type Harness, startHarness, TENANT_KEY } from '../helpers/harness.ts';

/** OpenAI's Go-style durations ("3s", "120ms", "6m0s", "1h2m3s") in ms. */
function durationMs(text: string | null): number {
  assert.ok(text, 'a reset header');
  const m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:(\d+)ms)?$/.exec(text);
  assert.ok(m && text !== '', `a Go-style duration: ${text}`);
  return (
    Number(m[1] ?? 0) * 3_600_000 + Number(m[2] ?? 0) * 60_000 + Number(m[3] ?? 0) * 1000 + Number(m[4] ?? 0)
  );
}

describe('x-ratelimit-* headers with OpenAI semantics', () => {
  let h: Harness;
  let client: OpenAI;
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        ...baseConfig(fake),
        limits: {
          tenants: {
            acme: {
              // The example: 20 a minute, at most 5 at once.
              requests: { limit: 20, per: 'minute', burst: 5 },
              // 100 tokens a second is 6,000 a minute; the bucket holds 2,000.
              tokens: { limit: 100, per: 'second', burst: 2_000 },
            },
          },
        },
      }),
    });
    client = new OpenAI({ baseURL: h.baseURL, apiKey: TENANT_KEY, maxRetries: 0, timeout: 10_000 });
  });
  after(() => h.close());

  const create = () =>
    client.chat.completions
      .create({ model: 'test-model', messages: [{ role: 'user', content: 'hello' }], max_tokens: 100 })
      .withResponse();

  it('limit is the rate per minute, remaining what is left now, reset the time to full', async () => {
    const { response } = await create();
    const headers = response.headers;
    // Requests: 20 per minute, not the burst of 5; one of the 5 spent.
    assert.equal(headers.get('x-ratelimit-limit-requests'), '20');
    assert.equal(headers.get('x-ratelimit-remaining-requests'), '4');
    // One request refills in 60 s / 20 = 3 s: then the bucket is back to its initial state.
    assert.equal(headers.get('x-ratelimit-reset-requests'), '3s');
    // Tokens: 100 a second reported as 6,000 a minute.
    assert.equal(headers.get('x-ratelimit-limit-tokens'), '6000');
    const remaining = Number(headers.get('x-ratelimit-remaining-tokens'));
    const spent = 2_000 - remaining;
    assert.ok(spent >= 100 && spent < 200, `the estimate (prompt + max_tokens 100) was charged: ${spent}`);
    // Reset: the spent tokens at 100 a second.
    const reset = durationMs(headers.get('x-ratelimit-reset-tokens'));
    assert.ok(Math.abs(reset - spent * 10) <= 100, `reset ${reset} ms for ${spent} tokens at 100/s`);
  });

  it('a client draining the burst sees remaining fall to 0 under the same limit, then a 429', async () => {
    const remaining: number[] = [];
    let refused: Headers | undefined;
    // Bounded: the bucket holds 5, so the 429 comes within a few requests.
    for (let i = 0; i < 12 && !refused; i++) {
      try {
        const { response } = await create();
        assert.equal(response.headers.get('x-ratelimit-limit-requests'), '20');
        remaining.push(Number(response.headers.get('x-ratelimit-remaining-requests')));
      } catch (err) {
        assert.ok(err instanceof OpenAI.RateLimitError, String(err));
        refused = err.headers;
      }
    }
    assert.ok(refused, 'the bucket ran out');
    assert.ok(remaining.length >= 3, `admitted before the 429: ${remaining}`);
    for (let i = 1; i < remaining.length; i++) assert.ok(remaining[i]! <= remaining[i - 1]! + 1);
    assert.ok(
      remaining.every((r) => r <= 5),
      'remaining never exceeds what may be sent at once',
    );
    const err = refused;
    assert.equal(err.get('x-ratelimit-limit-requests'), '20');
    assert.equal(err.get('x-ratelimit-remaining-requests'), '0');
    // Full again after at most the whole burst at 3 s a request.
    const reset = durationMs(err.get('x-ratelimit-reset-requests'));
    assert.ok(reset > 0 && reset <= 15_000, `reset ${reset} ms`);
    assert.ok(Number(err.get('retry-after')) >= 1);
  });
});
