/**
 * Whether and when to try again after a failed attempt. Pure: everything it needs is passed in,
 * so every rule is unit-tested without sockets or timers.
 */
import { fullJitterDelayMs } from './backoff.ts';
import type { FailureClass } from './failure-class.ts';

export interface RetrySettings {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /**
   * May a retry go back to a deployment that already failed this request? true: when no untried
   * deployment (or fallback) is left, retry one that was tried (the same one, for a model with one
   * deployment). false: each deployment is tried at most once per request; with none untried
   * left, the failure is answered. Some providers' 5xx are per connection (a retry on the same
   * deployment succeeds), others per deployment (it only adds load and latency).
   */
  sameDeployment: boolean;
}

export interface RetryInput {
  failure: FailureClass;
  /** Attempts made so far (1 after the first). */
  attempts: number;
  /** Time left before the request's deadline. */
  remainingMs: number;
  /** Another deployment (or fallback model) is available that was not tried yet. */
  hasUntried: boolean;
  /** The provider's Retry-After / retry-after-ms, if it sent one. */
  retryAfterMs: number | undefined;
}

export type RetryDecision =
  | { retry: false; reason: 'permanent' | 'final' | 'attempts' | 'deadline' | 'no_untried' }
  /** sameDeployment: wait and go back to the deployment that failed (its Retry-After said when). */
  | { retry: true; delayMs: number; sameDeployment: boolean };

export function decideRetry(
  input: RetryInput,
  settings: RetrySettings,
  random: () => number = Math.random,
): RetryDecision {
  if (input.failure === 'permanent') return { retry: false, reason: 'permanent' };
  if (input.failure === 'final') return { retry: false, reason: 'final' };
  if (input.attempts >= settings.maxAttempts) return { retry: false, reason: 'attempts' };
  if (!settings.sameDeployment && !input.hasUntried) return { retry: false, reason: 'no_untried' };

  if (input.failure === 'rate_limited') {
    // "Slow down" is about this deployment: another one can take the request right away.
    if (input.hasUntried) return { retry: true, delayMs: 0, sameDeployment: false };
    if (input.retryAfterMs !== undefined) {
      return input.retryAfterMs < input.remainingMs
        ? { retry: true, delayMs: input.retryAfterMs, sameDeployment: true }
        : { retry: false, reason: 'deadline' };
    }
  }

  const delayMs = fullJitterDelayMs(input.attempts - 1, settings.baseDelayMs, settings.maxDelayMs, random);
  if (delayMs >= input.remainingMs) return { retry: false, reason: 'deadline' };
  // Not pinned to the failed deployment: the caller picks an untried one, else any healthy one.
  return { retry: true, delayMs, sameDeployment: false };
}
