/**
 * Failed authentications cost the client address a token. An address whose bucket is empty has
 * its credentials refused before they are checked, so a key guesser learns nothing while blocked
 * and gets `perMinute` guesses a minute at most. Pure (the clock is passed in) and in memory: each
 * instance keeps its own buckets.
 *
 * Memory is bounded: at most `maxAddresses` buckets, kept in a Map in least-recently-failed order;
 * past the bound the oldest is forgotten (it is the likeliest to have refilled), and a bucket seen
 * full again is dropped. An attacker with many addresses can make the gateway forget a blocked
 * one early, never make it grow.
 */
import { type BucketState, refill } from '../limits/token-bucket.ts';

export interface AuthFailureSettings {
  /** Failures in a row before the address is blocked; 0 = no limit. */
  readonly burst: number;
  /** Refill rate of the allowance. */
  readonly perMinute: number;
  /** Buckets held at most. */
  readonly maxAddresses: number;
}

export class AuthFailureLimiter {
  readonly #buckets = new Map<string, BucketState>();
  #burst = 0;
  #ratePerMs = 1;
  #maxAddresses = 1;

  constructor(settings: AuthFailureSettings) {
    this.configure(settings);
  }

  configure(settings: AuthFailureSettings): void {
    this.#burst = settings.burst;
    this.#ratePerMs = settings.perMinute / 60_000;
    this.#maxAddresses = settings.maxAddresses;
    if (this.#burst === 0) this.#buckets.clear();
    while (this.#buckets.size > this.#maxAddresses) this.#evictOldest();
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** ms until `address` may present credentials again; 0 when it may now. */
  blockedForMs(address: string, now: number): number {
    if (this.#buckets.size === 0) return 0;
    const state = this.#buckets.get(address);
    if (state === undefined) return 0;
    const level = refill(state, now, this.#ratePerMs, this.#burst);
    if (level >= this.#burst) {
      this.#buckets.delete(address);
      return 0;
    }
    return level >= 1 ? 0 : Math.ceil((1 - level) / this.#ratePerMs);
  }

  /** Charges one failed authentication; true when it used up the address's allowance. */
  recordFailure(address: string, now: number): boolean {
    if (this.#burst === 0) return false;
    const state = this.#buckets.get(address);
    const level = refill(state, now, this.#ratePerMs, this.#burst);
    const after = Math.max(0, level - 1);
    if (state === undefined) {
      if (this.#buckets.size >= this.#maxAddresses) this.#evictOldest();
      this.#buckets.set(address, { level: after, at: now });
    } else {
      // Re-inserted so the Map's order stays least-recently-failed first.
      this.#buckets.delete(address);
      state.level = after;
      state.at = now;
      this.#buckets.set(address, state);
    }
    return level >= 1 && after < 1;
  }

  #evictOldest(): void {
    const oldest = this.#buckets.keys().next();
    if (!oldest.done) this.#buckets.delete(oldest.value);
  }
}
