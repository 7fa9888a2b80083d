import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SluiceError } from '../../src/errors/sluice-error.ts';
import { fullJitterDelayMs } from '../../src/resilience/backoff.ts';
import { classifyFailure, isContextLengthError } from '../../src/resilience/failure-class.ts';
import { RetryBudget } from '../../src/resilience/retry-budget.ts';
import { decideRetry, type RetryInput } from '../../src/resilience/retry-policy.ts';
import { pickTwoChoices } from '../../src/routing/select.ts';
import { parseRetryAfterMs, providerErrorFromResponse } from '../../src/upstream/classify.ts';

const SETTINGS = { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 2_000, sameDeployment: true };
const input = (over: Partial<RetryInput>): RetryInput => ({
  failure: 'overloaded',
  attempts: 1,
  remainingMs: 10_000,
  hasUntried: false,
  retryAfterMs: undefined,
  ...over,
});

describe('classifyFailure', () => {
  const provider = (status: number) => providerErrorFromResponse(status, '', undefined);
  it('follows the design table', () => {
    for (const s of [400, 404, 413, 422]) assert.equal(classifyFailure(provider(s)), 'permanent', String(s));
    assert.equal(classifyFailure(provider(401)), 'permanent');
    assert.equal(classifyFailure(provider(403)), 'permanent');
    assert.equal(classifyFailure(provider(429)), 'rate_limited');
    for (const s of [500, 502, 503, 504, 529])
      assert.equal(classifyFailure(provider(s)), 'overloaded', String(s));
    for (const code of [
      'connect_timeout',
      'first_token_timeout',
      'chunk_gap_timeout',
      'upstream_unreachable',
    ] as const) {
      assert.equal(classifyFailure(new SluiceError(code, 'x')), 'transient', code);
    }
    assert.equal(classifyFailure(new SluiceError('total_timeout', 'x')), 'final');
    assert.equal(classifyFailure(new SluiceError('client_closed_request', 'x')), 'final');
  });
  it('recognises context-length errors by code or message', () => {
    const byCode = providerErrorFromResponse(
      400,
      '{"error":{"message":"x","code":"context_length_exceeded"}}',
      undefined,
    );
    const byText = providerErrorFromResponse(
      400,
      '{"error":{"message":"This model\'s maximum context length is 8192 tokens"}}',
      undefined,
    );
    const other = providerErrorFromResponse(400, '{"error":{"message":"bad temperature"}}', undefined);
    assert.equal(isContextLengthError(byCode), true);
    assert.equal(isContextLengthError(byText), true);
    assert.equal(isContextLengthError(other), false);
  });
});

describe('decideRetry', () => {
  it('never retries permanent or final failures', () => {
    assert.deepEqual(decideRetry(input({ failure: 'permanent' }), SETTINGS), {
      retry: false,
      reason: 'permanent',
    });
    assert.deepEqual(decideRetry(input({ failure: 'final' }), SETTINGS), { retry: false, reason: 'final' });
  });
  it('stops at maxAttempts', () => {
    assert.deepEqual(decideRetry(input({ attempts: 3 }), SETTINGS), { retry: false, reason: 'attempts' });
  });
  it('a 429 moves to another deployment at once when there is one', () => {
    assert.deepEqual(
      decideRetry(input({ failure: 'rate_limited', hasUntried: true, retryAfterMs: 5_000 }), SETTINGS),
      {
        retry: true,
        delayMs: 0,
        sameDeployment: false,
      },
    );
  });
  it('a 429 otherwise waits Retry-After when it fits the deadline, and gives up when it does not', () => {
    assert.deepEqual(decideRetry(input({ failure: 'rate_limited', retryAfterMs: 700 }), SETTINGS), {
      retry: true,
      delayMs: 700,
      sameDeployment: true,
    });
    assert.deepEqual(decideRetry(input({ failure: 'rate_limited', retryAfterMs: 30_000 }), SETTINGS), {
      retry: false,
      reason: 'deadline',
    });
  });
  it('overload and transient failures back off with full jitter inside the exponential ceiling', () => {
    const at = (attempts: number, r: number) =>
      decideRetry(input({ attempts }), SETTINGS, () => r) as { retry: true; delayMs: number };
    assert.ok(Math.abs(at(1, 0.999).delayMs - 99.9) < 1e-9);
    assert.ok(Math.abs(at(2, 0.999).delayMs - 199.8) < 1e-9);
    assert.equal(at(1, 0).delayMs, 0);
    assert.equal(decideRetry(input({ attempts: 2, remainingMs: 50 }), SETTINGS, () => 0.9).retry, false);
  });
  it('a backoff retry is not pinned to the deployment that failed', () => {
    for (const hasUntried of [true, false]) {
      const d = decideRetry(input({ failure: 'transient', hasUntried }), SETTINGS, () => 0.5);
      assert.equal(d.retry && d.sameDeployment, false);
    }
  });
  it('retry.sameDeployment: false retries only onto an untried deployment, else answers', () => {
    const once = { ...SETTINGS, sameDeployment: false };
    for (const failure of ['overloaded', 'transient', 'rate_limited'] as const) {
      assert.deepEqual(
        decideRetry(input({ failure, retryAfterMs: 100 }), once, () => 0.5),
        {
          retry: false,
          reason: 'no_untried',
        },
      );
      const d = decideRetry(input({ failure, hasUntried: true }), once, () => 0.5);
      assert.equal(d.retry, true, failure);
      assert.equal(d.retry && d.sameDeployment, false);
    }
  });
});

describe('full jitter', () => {
  it('spreads a batch of retries: no two identical delays among 50', () => {
    const delays = Array.from({ length: 50 }, () => fullJitterDelayMs(3, 100, 10_000));
    assert.equal(new Set(delays).size, 50, `repeated delays: ${delays.join(',')}`);
    for (const d of delays) assert.ok(d >= 0 && d < 800);
  });
  it('is capped by maxDelayMs', () => {
    const delay = fullJitterDelayMs(40, 100, 2_000, () => 0.999999);
    assert.ok(delay > 1_999 && delay < 2_000, String(delay));
  });
});

describe('RetryBudget', () => {
  it('allows ratio x recent first attempts plus the per-second floor, then refuses', () => {
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 0, windowMs: 10_000 });
    let now = 1_000_000;
    for (let i = 0; i < 50; i++) budget.recordRequest(now);
    let granted = 0;
    for (let i = 0; i < 30; i++) if (budget.tryRetry(now)) granted++;
    assert.equal(granted, 10);
    // The window slides: after it has passed, old traffic no longer earns retries.
    now += 11_000;
    assert.equal(budget.tryRetry(now), false);
    budget.recordRequest(now);
    for (let i = 0; i < 9; i++) budget.recordRequest(now);
    assert.equal(budget.tryRetry(now), true);
    assert.equal(budget.tryRetry(now), true);
    assert.equal(budget.tryRetry(now), false);
  });
  it('the floor lets a quiet deployment retry a little', () => {
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 0.3, windowMs: 10_000 });
    const granted = Array.from({ length: 5 }, () => budget.tryRetry(5_000)).filter(Boolean).length;
    assert.equal(granted, 3);
  });
});

describe('parseRetryAfterMs', () => {
  it('reads retry-after-ms first, then seconds, then an HTTP date', () => {
    assert.equal(parseRetryAfterMs('2', '150'), 150);
    assert.equal(parseRetryAfterMs('1.5', undefined), 1_500);
    assert.equal(parseRetryAfterMs(new Date(10_000).toUTCString(), undefined, 7_000), 3_000);
    assert.equal(parseRetryAfterMs('soon', undefined), undefined);
    assert.equal(parseRetryAfterMs('-1', undefined), undefined);
    assert.equal(parseRetryAfterMs(undefined, ''), undefined);
  });
});

describe('pickTwoChoices', () => {
  it('of two weighted draws keeps the less loaded', () => {
    const a = { id: 'a', weight: 1 };
    const b = { id: 'b', weight: 1 };
    const load = new Map([
      [a, 5],
      [b, 1],
    ]);
    const rand = [0.1, 0.9]; // draws a, then b
    let i = 0;
    assert.equal(
      pickTwoChoices(
        [a, b],
        (x) => load.get(x)!,
        () => rand[i++]!,
      ).id,
      'b',
    );
  });
});
