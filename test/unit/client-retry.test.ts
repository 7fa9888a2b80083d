/** x-should-retry: true only where a retry can help and Sluice can say when. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientShouldRetry } from '../../src/errors/client-retry.ts';
import { SluiceError } from '../../src/errors/sluice-error.ts';

const provider = { message: 'x', type: null, param: null, code: null };

describe('clientShouldRetry', () => {
  const cases: Array<[string, SluiceError, boolean]> = [
    ['a bad request', new SluiceError('invalid_request', 'x'), false],
    ['the provider refused our key', new SluiceError('upstream_auth_failed', 'x'), false],
    [
      'a provider 503 Sluice already retried',
      new SluiceError('upstream_error', 'x', { status: 503, provider }),
      false,
    ],
    [
      'a provider 503 with retry-after (Sluice spent its attempts)',
      new SluiceError('upstream_error', 'x', { status: 503, provider, retryAfterSeconds: 1 }),
      false,
    ],
    [
      'a provider 429 with retry-after',
      new SluiceError('upstream_error', 'x', { status: 429, provider, retryAfterSeconds: 2 }),
      true,
    ],
    [
      'a provider 429 without retry-after',
      new SluiceError('upstream_error', 'x', { status: 429, provider }),
      false,
    ],
    ['a total timeout', new SluiceError('total_timeout', 'x'), false],
    ['a bug', new SluiceError('internal_error', 'x'), false],
    ['a tenant rate limit', new SluiceError('rate_limit_exceeded', 'x', { retryAfterSeconds: 3 }), true],
    [
      'more tokens than the bucket holds',
      new SluiceError('tokens_exceed_limit', 'x', { retryAfterSeconds: 1 }),
      false,
    ],
    ['open breakers', new SluiceError('deployments_unavailable', 'x', { retryAfterSeconds: 5 }), true],
    ['a full queue', new SluiceError('queue_full', 'x', { retryAfterSeconds: 1 }), true],
    ['a draining instance', new SluiceError('shutting_down', 'x'), true],
  ];
  for (const [what, error, expected] of cases) {
    it(`${what} -> ${expected}`, () => assert.equal(clientShouldRetry(error), expected));
  }
});
