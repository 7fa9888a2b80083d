/**
 * OpenAI's rate-limit headers, so SDKs and agents that already read them work unchanged. OpenAI
 * means by them (and clients pace themselves by):
 *   x-ratelimit-limit-requests / -tokens       the rate: requests (tokens) permitted per minute
 *   x-ratelimit-remaining-requests / -tokens   what may be sent now before the limit refuses
 *   x-ratelimit-reset-requests / -tokens       time until the limit is back to its initial state
 *                                              ("1s", "6m0s", "20ms")
 * A token bucket maps onto them as: limit = its refill rate (see headerLimit), remaining = what the
 * bucket holds now (never more than `burst`), reset = time until it is full again.
 * With several buckets of a kind (tenant-wide and per model), the one with the least left speaks.
 */

export type Per = 'second' | 'minute' | 'hour' | 'day';

export interface BucketReport {
  /** The figure for x-ratelimit-limit-*: headerLimit() of the bucket's config. */
  readonly limit: number;
  readonly remaining: number;
  readonly resetMs: number;
}

/**
 * The rate a bucket reports as its limit. OpenAI's limit headers are per minute (RPM, TPM), so a
 * per-second limit is reported per minute (x 60). An hourly or daily limit is reported as
 * configured: per minute it would be a fraction (1,000 a day is 0.69 a minute), and its reset
 * duration (hours) says which window it counts. Never the burst: a client that read the burst as
 * its per-minute rate would pace itself far below what it is allowed.
 */
export function headerLimit(limit: number, per: Per): number {
  return Math.floor(per === 'second' ? limit * 60 : limit);
}

export function rateLimitHeaders(
  requests: BucketReport | undefined,
  tokens: BucketReport | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (requests) {
    out['x-ratelimit-limit-requests'] = String(requests.limit);
    out['x-ratelimit-remaining-requests'] = String(requests.remaining);
    out['x-ratelimit-reset-requests'] = formatDuration(requests.resetMs);
  }
  if (tokens) {
    out['x-ratelimit-limit-tokens'] = String(tokens.limit);
    out['x-ratelimit-remaining-tokens'] = String(tokens.remaining);
    out['x-ratelimit-reset-tokens'] = formatDuration(tokens.resetMs);
  }
  return out;
}

/** Go-style durations as OpenAI sends them: 0s, 20ms, 1.5s, 6m0s, 1h2m3s. */
export function formatDuration(ms: number): string {
  if (!(ms > 0)) return '0s';
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  const totalSeconds = Math.ceil(ms / 100) / 10;
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = Math.round((totalSeconds % 60) * 10) / 10;
  if (hours > 0) return `${hours}h${minutes}m${Math.floor(seconds)}s`;
  if (minutes > 0) return `${minutes}m${Math.floor(seconds)}s`;
  return `${seconds}s`;
}
