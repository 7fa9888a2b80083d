/**
 * Whether a client retry of this failed request can help, sent as `x-should-retry` (the header the
 * official OpenAI SDKs obey before their own rules: by default they retry every 408, 409, 429 and
 * 5xx, twice). Without it a provider 401 answered 502 reached the provider three times, and a 503
 * that Sluice had already retried three times reached it nine.
 *
 * A retry helps when Sluice can say when: its own refusals that carry `retry-after` (limits,
 * queues, shedding, open breakers, spent budgets), a provider's 429 with its `retry-after`, and a
 * draining instance (another one answers). Everything else is final for the client: the request
 * itself is wrong, or Sluice already spent its own attempts, retry budget or deadline on it.
 */
import type { SluiceError } from './sluice-error.ts';

export function clientShouldRetry(error: SluiceError): boolean {
  switch (error.code) {
    case 'shutting_down':
      return true;
    case 'upstream_error':
      return error.status === 429 && error.retryAfterSeconds !== undefined;
    case 'tokens_exceed_limit':
      return false;
    default:
      return error.status >= 429 && error.retryAfterSeconds !== undefined;
  }
}
