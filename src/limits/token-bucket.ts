/**
 * The token bucket and lease arithmetic, pure: the memory store runs it, and the Redis store's Lua
 * script is a line-by-line transcription of it (src/limits/redis-store.ts).
 */
import type { BucketCheck, BucketOutcome } from './store.ts';

export interface BucketState {
  /** Tokens in the bucket at `at` (may be negative after a charge: debt). */
  level: number;
  /** ms timestamp of `level`. */
  at: number;
}

/** The level at `now`, refilled since the last update and capped at burst. */
export function refill(
  state: BucketState | undefined,
  now: number,
  ratePerMs: number,
  burst: number,
): number {
  if (state === undefined) return burst;
  const elapsed = Math.max(0, now - state.at);
  return Math.min(burst, state.level + elapsed * ratePerMs);
}

/** The outcome for one bucket at `level`, before (or without) committing. */
export function evaluate(check: BucketCheck, level: number): BucketOutcome {
  const allowed = level >= check.cost;
  const after = allowed ? level - check.cost : level;
  return {
    allowed,
    remaining: Math.max(0, Math.floor(after)),
    retryAfterMs: allowed ? 0 : Math.ceil((check.cost - level) / check.ratePerMs),
    resetMs: Math.ceil((check.burst - after) / check.ratePerMs),
  };
}

/** ms a bucket at `level` takes to be full: its state can expire then (absent means full). */
export function timeToFull(level: number, ratePerMs: number, burst: number): number {
  return Math.ceil((burst - level) / ratePerMs);
}
