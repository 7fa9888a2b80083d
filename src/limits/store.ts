/**
 * The limit store contract. One `admit` call is one decision and, on Redis, one round trip: it
 * checks every bucket and the lease it is given and commits all of them or none, so a request
 * refused by one limit spends nothing from the others.
 *
 * Buckets are token buckets that refill `ratePerMs` continuously up to `burst`; an absent bucket is
 * full. A lease is one slot in a set of at most `max` live slots; a slot not renewed within
 * `ttlMs` is gone, so an instance that dies cannot hold slots for ever.
 *
 * A shadow bucket or lease is evaluated like the others, and reports whether it would have
 * refused, but never refuses. It is charged only when it would have admitted, exactly as if it
 * were enforced, so turning enforcement on later behaves the way the shadow reports said.
 *
 * Two implementations keep the same semantics: MemoryStore (one process) and RedisStore (Lua,
 * shared by every instance); test/unit/limit-store-conformance.test.ts runs the same cases on both.
 */

export interface BucketCheck {
  readonly key: string;
  readonly ratePerMs: number;
  readonly burst: number;
  readonly cost: number;
  readonly shadow: boolean;
}

export interface LeaseCheck {
  readonly key: string;
  readonly id: string;
  readonly max: number;
  readonly ttlMs: number;
  readonly shadow: boolean;
}

export interface AdmitCall {
  readonly buckets: readonly BucketCheck[];
  readonly lease?: LeaseCheck | undefined;
}

export interface BucketOutcome {
  /** Would this bucket admit the request on its own (shadow buckets included)? */
  readonly allowed: boolean;
  /** Whole tokens left after this call (before it, when the call was refused). */
  readonly remaining: number;
  /** ms until this bucket could pay the cost; 0 when it could now. */
  readonly retryAfterMs: number;
  /** ms until this bucket is full again. */
  readonly resetMs: number;
}

export interface LeaseOutcome {
  readonly allowed: boolean;
  /** Live slots after this call. */
  readonly inFlight: number;
}

export interface AdmitResult {
  /** True when no enforced bucket or lease refused; then every admitting check was committed. */
  readonly allowed: boolean;
  readonly buckets: readonly BucketOutcome[];
  readonly lease: LeaseOutcome | undefined;
}

/** A charge (`delta` > 0) or refund (`delta` < 0) after the fact; a refund never overfills. */
export interface Adjustment {
  readonly key: string;
  readonly ratePerMs: number;
  readonly burst: number;
  readonly delta: number;
}

/** What one decision leaves behind when its request ends: one call, like the decision. */
export interface SettleCall {
  readonly adjustments: readonly Adjustment[];
  readonly release?: { readonly key: string; readonly id: string } | undefined;
}

export interface LimitStore {
  admit(call: AdmitCall): Promise<AdmitResult>;
  settle(call: SettleCall): Promise<void>;
  /** Push the expiry of live leases to now + ttlMs. */
  renew(leases: ReadonlyArray<{ key: string; id: string }>, ttlMs: number): Promise<void>;
  close(): Promise<void>;
}
