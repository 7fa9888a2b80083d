/**
 * OpenAI's rate-limit headers, so SDKs and agents that already read them work unchanged:
 *   x-ratelimit-limit-requests / -tokens       the bucket size
 *   x-ratelimit-remaining-requests / -tokens   what is left now
 *   x-ratelimit-reset-requests / -tokens       time until the bucket is full again ("1s", "6m0s", "20ms")
 * With several buckets of a kind (tenant-wide and per model), the one with the least left speaks.
 */

export interface BucketReport {
  readonly burst: number;
  readonly remaining: number;
  readonly resetMs: number;
}

export function rateLimitHeaders(
  requests: BucketReport | undefined,
  tokens: BucketReport | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (requests) {
    out['x-ratelimit-limit-requests'] = String(Math.floor(requests.burst));
    out['x-ratelimit-remaining-requests'] = String(requests.remaining);
    out['x-ratelimit-reset-requests'] = formatDuration(requests.resetMs);
  }
  if (tokens) {
    out['x-ratelimit-limit-tokens'] = String(Math.floor(tokens.burst));
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
