/**
 * What kind of failure an error is, decided once, from the error code and the provider's status.
 * The retry policy, the breakers and the metrics all ask this function.
 *
 *   permanent     the request itself is wrong (400, 401, 403, 404, 413, 422): no retry
 *   rate_limited  429: slow down; another deployment, or after Retry-After
 *   overloaded    500, 502, 503, 504, 529: backoff with jitter; counts toward the breaker
 *   transient     reset, refused, DNS, connect / first-token / chunk-gap timeouts: backoff; counts
 *   final         nothing to retry: the deadline passed or the client left
 */
import type { SluiceError } from '../errors/sluice-error.ts';

export type FailureClass = 'permanent' | 'rate_limited' | 'overloaded' | 'transient' | 'final';

const OVERLOADED = new Set([500, 502, 503, 504, 529]);

export function classifyFailure(error: SluiceError): FailureClass {
  switch (error.code) {
    case 'total_timeout':
    case 'client_closed_request':
    case 'shutting_down':
      return 'final';
    case 'connect_timeout':
    case 'first_token_timeout':
    case 'chunk_gap_timeout':
    case 'upstream_unreachable':
    case 'upstream_bad_response':
    case 'upstream_stream_interrupted':
      return 'transient';
    case 'upstream_auth_failed':
      return 'permanent';
    case 'upstream_error':
      if (error.status === 429) return 'rate_limited';
      if (OVERLOADED.has(error.status)) return 'overloaded';
      // Other 5xx (501, 505, ...) say the request cannot be served as sent.
      return 'permanent';
    default:
      return 'permanent';
  }
}

/** A provider's "prompt too long" answer, which may fall back to a larger-context model. */
export function isContextLengthError(error: SluiceError): boolean {
  const provider = error.provider;
  if (!provider || error.status !== 400) return false;
  if (provider.code === 'context_length_exceeded' || provider.code === 'string_above_max_length') return true;
  return /context length|context window|maximum context|too many tokens/i.test(provider.message);
}
