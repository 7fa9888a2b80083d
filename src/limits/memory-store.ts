/**
 * Limits kept in this process: the embedded default (no Redis), and the fallback each instance
 * uses while Redis is unreachable. Same semantics as the Redis store (see store.ts). Its size is
 * bounded by the config: one bucket per configured limit and key, one lease per request in flight;
 * full buckets and empty lease sets are dropped by a sweep.
 */
import type { AdmitCall, AdmitResult, LeaseOutcome, LimitStore, SettleCall } from './store.ts';
import { type BucketState, evaluate, refill, timeToFull } from './token-bucket.ts';

export class MemoryStore implements LimitStore {
  readonly #clock: () => number;
  readonly #buckets = new Map<string, BucketState & { ratePerMs: number; burst: number }>();
  /** key -> lease id -> expiry (ms). */
  readonly #leases = new Map<string, Map<string, number>>();
  #calls = 0;

  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
  }

  admit(call: AdmitCall): Promise<AdmitResult> {
    const now = this.#clock();
    if (++this.#calls % 10_000 === 0) this.#sweep(now);
    const levels = call.buckets.map((b) => refill(this.#buckets.get(b.key), now, b.ratePerMs, b.burst));
    const buckets = call.buckets.map((b, i) => evaluate(b, levels[i]!));
    let allowed = call.buckets.every((b, i) => b.shadow || buckets[i]!.allowed);

    let lease: LeaseOutcome | undefined;
    let slots: Map<string, number> | undefined;
    if (call.lease) {
      // Expired slots only matter when they would make the set look full: sweep only then.
      slots = this.#leases.get(call.lease.key) ?? new Map<string, number>();
      if (slots.size >= call.lease.max) slots = this.#liveSlots(call.lease.key, now);
      const fits = slots.size < call.lease.max;
      lease = { allowed: fits, inFlight: slots.size };
      if (!fits && !call.lease.shadow) allowed = false;
    }
    if (allowed) {
      call.buckets.forEach((b, i) => {
        if (!buckets[i]!.allowed) return;
        this.#buckets.set(b.key, {
          level: levels[i]! - b.cost,
          at: now,
          ratePerMs: b.ratePerMs,
          burst: b.burst,
        });
      });
      if (call.lease && slots && lease?.allowed) {
        slots.set(call.lease.id, now + call.lease.ttlMs);
        this.#leases.set(call.lease.key, slots);
        lease = { allowed: true, inFlight: slots.size };
      }
    }
    return Promise.resolve({ allowed, buckets, lease });
  }

  settle(call: SettleCall): Promise<void> {
    const now = this.#clock();
    for (const { key, ratePerMs, burst, delta } of call.adjustments) {
      const level = refill(this.#buckets.get(key), now, ratePerMs, burst);
      this.#buckets.set(key, { level: Math.min(burst, level - delta), at: now, ratePerMs, burst });
    }
    if (call.release) {
      const slots = this.#leases.get(call.release.key);
      if (slots) {
        slots.delete(call.release.id);
        if (slots.size === 0) this.#leases.delete(call.release.key);
      }
    }
    return Promise.resolve();
  }

  renew(leases: ReadonlyArray<{ key: string; id: string }>, ttlMs: number): Promise<void> {
    const expiry = this.#clock() + ttlMs;
    for (const { key, id } of leases) {
      const slots = this.#leases.get(key);
      if (slots?.has(id)) slots.set(id, expiry);
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#buckets.clear();
    this.#leases.clear();
    return Promise.resolve();
  }

  #liveSlots(key: string, now: number): Map<string, number> {
    const slots = this.#leases.get(key) ?? new Map<string, number>();
    for (const [id, expiry] of slots) if (expiry <= now) slots.delete(id);
    return slots;
  }

  #sweep(now: number): void {
    for (const [key, b] of this.#buckets) {
      if (timeToFull(refill(b, now, b.ratePerMs, b.burst), b.ratePerMs, b.burst) <= 0)
        this.#buckets.delete(key);
    }
    for (const [key] of this.#leases) if (this.#liveSlots(key, now).size === 0) this.#leases.delete(key);
  }
}
