import assert from 'node:assert/strict';
import { test } from 'node:test';
import calculateSlot from 'cluster-key-slot';
import { estimateTokens } from '../../src/limits/estimate.ts';
import { formatDuration, headerLimit, rateLimitHeaders } from '../../src/limits/headers.ts';
import { limitKeys } from '../../src/limits/keys.ts';
import { requestPriority } from '../../src/limits/priority.ts';

const SETTINGS = { charsPerToken: 4, defaultMaxTokens: 100 };

test('token estimate: prompt characters / charsPerToken plus max tokens, times n', () => {
  const body = { messages: [{ role: 'user', content: 'x'.repeat(400) }], max_tokens: 50 };
  assert.equal(estimateTokens('chat.completions', body, SETTINGS), Math.ceil((400 + 16) / 4) + 50);
  assert.equal(
    estimateTokens('chat.completions', { ...body, max_tokens: undefined }, SETTINGS),
    104 + 100,
    'default max tokens',
  );
  assert.equal(estimateTokens('chat.completions', { ...body, max_completion_tokens: 10 }, SETTINGS), 114);
  assert.equal(estimateTokens('chat.completions', { ...body, n: 3 }, SETTINGS), 104 + 150);
  const parts = {
    messages: [{ role: 'user', content: [{ type: 'text', text: 'y'.repeat(84) }, { type: 'image_url' }] }],
    max_tokens: 0,
  };
  assert.equal(estimateTokens('chat.completions', parts, SETTINGS), 25);
  assert.equal(estimateTokens('completions', { prompt: ['abcd', 'efgh'], max_tokens: 1 }, SETTINGS), 3);
  assert.equal(estimateTokens('embeddings', { input: 'z'.repeat(40) }, SETTINGS), 10, 'no completion');
  assert.equal(estimateTokens('embeddings', { input: [[1, 2, 3]] }, SETTINGS), 3, 'token ids');
  assert.equal(estimateTokens('embeddings', { input: '' }, SETTINGS), 1, 'never zero');
});

test('rate-limit headers: OpenAI names and Go-style reset durations', () => {
  assert.deepEqual(rateLimitHeaders({ limit: 100, remaining: 99, resetMs: 600 }, undefined), {
    'x-ratelimit-limit-requests': '100',
    'x-ratelimit-remaining-requests': '99',
    'x-ratelimit-reset-requests': '600ms',
  });
  assert.equal(
    rateLimitHeaders(undefined, { limit: 5, remaining: 0, resetMs: 1 })['x-ratelimit-reset-tokens'],
    '1ms',
  );
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(1500), '1.5s');
  assert.equal(formatDuration(360_000), '6m0s');
  assert.equal(formatDuration(3_723_000), '1h2m3s');
});

test('x-ratelimit-limit-* is the rate per minute, never the burst', () => {
  assert.equal(headerLimit(20, 'minute'), 20);
  assert.equal(headerLimit(10, 'second'), 600);
  // Per minute these would be fractions: reported as configured, the reset (hours) says the window.
  assert.equal(headerLimit(1_000, 'day'), 1_000);
  assert.equal(headerLimit(500, 'hour'), 500);
});

test('every key one script call touches is in one Redis Cluster slot', () => {
  const keys = limitKeys('sluice');
  const tenantKeys = [
    keys.tenant('acme', 'requests'),
    keys.tenant('acme', 'tokens'),
    keys.tenantModel('acme', 'gpt-4o{evil}', 'requests'),
    keys.tenantModel('acme', 'gpt-4o{evil}', 'tokens'),
    keys.tenantInFlight('acme'),
  ];
  assert.equal(new Set(tenantKeys.map((k) => calculateSlot(k))).size, 1);
  assert.equal(
    new Set(
      [keys.provider('openai', 'requests'), keys.provider('openai', 'tokens')].map((k) => calculateSlot(k)),
    ).size,
    1,
  );
  assert.match(keys.fleetInFlight('a{b}c'), /^sluice:\{f:a%7Bb%7Dc\}:inflight$/);
});

test('priority: a request may lower its class, never raise it; a bad value is a 400', () => {
  assert.equal(requestPriority('critical', undefined), 'critical');
  assert.equal(requestPriority('critical', 'batch'), 'batch');
  assert.equal(requestPriority('batch', 'critical'), 'batch');
  assert.equal(requestPriority('standard', 'standard'), 'standard');
  assert.throws(() => requestPriority('standard', 'urgent'), { code: 'invalid_request', status: 400 });
  assert.throws(() => requestPriority('standard', ['batch', 'batch']), { code: 'invalid_request' });
});
