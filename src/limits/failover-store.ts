/**
 * The store the limiter talks to: Redis when configured and healthy, this process's memory when
 * not. While Redis is unreachable each instance enforces its share of every limit locally
 * (1 / the number of live instances Redis last reported), so the fleet as a whole stays near the
 * configured limit; a tenant set to fail closed is refused instead.
 *
 * A small breaker guards Redis: after `failuresToOpen` failed commands in a row, Redis is not tried
 * for `cooldownMs`; then one call probes it, and the first success brings every decision back to
 * Redis. A request therefore waits on a sick Redis at most `commandTimeoutMs`, and only while the
 * breaker is still closed or probing.
 *
 * Every decision is settled in the store that made it, so a slot taken locally is released locally.
 */
import { MemoryStore } from './memory-store.ts';
import type { RedisStore } from './redis-store.ts';
import type { AdmitCall, AdmitResult, SettleCall } from './store.ts';

export type StoreName = 'redis' | 'local';

export interface Lease {
  readonly key: string;
  readonly id: string;
  readonly store: StoreName;
}

export interface FailoverOptions {
  readonly redis: RedisStore | undefined;
  readonly failuresToOpen: number;
  readonly cooldownMs: number;
  readonly clock?: () => number;
  /** Called when decisions move between Redis and local memory. */
  readonly onSwitch?: (to: StoreName, reason: string) => void;
  /** Called on every failed Redis command. */
  readonly onError?: (err: unknown) => void;
}

export class RedisUnavailable extends Error {
  constructor(cause: unknown) {
    super('limit store unavailable', { cause });
    this.name = 'RedisUnavailable';
  }
}

export class FailoverStore {
  readonly #redis: RedisStore | undefined;
  readonly #local: MemoryStore;
  readonly #options: FailoverOptions;
  readonly #clock: () => number;
  #failures = 0;
  #openUntil = 0;
  #probing = false;
  #active: StoreName;
  /** Live instances as Redis last said; the local share of a limit is 1 / this. */
  #instances = 1;

  constructor(options: FailoverOptions) {
    this.#options = options;
    this.#redis = options.redis;
    this.#clock = options.clock ?? Date.now;
    this.#local = new MemoryStore(this.#clock);
    this.#active = this.#redis ? 'redis' : 'local';
  }

  /** Where decisions are made right now. */
  get active(): StoreName {
    return this.#active;
  }

  get hasRedis(): boolean {
    return this.#redis !== undefined;
  }

  /** True while the Redis connection is up (readiness reports it; an idle instance fails no command). */
  get redisReady(): boolean {
    return this.#redis?.ready ?? false;
  }

  get instances(): number {
    return this.#instances;
  }

  /** Waits (at most `timeoutMs`) for Redis to connect; true when it did or none is configured. */
  async waitForRedis(timeoutMs: number): Promise<boolean> {
    return this.#redis ? this.#redis.waitUntilReady(timeoutMs) : true;
  }

  /**
   * One decision. On Redis failure: the local store with this instance's share when `failOpen`,
   * else RedisUnavailable. Without Redis configured, the local store with the whole limit.
   */
  async admit(call: AdmitCall, failOpen: boolean): Promise<{ result: AdmitResult; store: StoreName }> {
    const redis = this.#tryRedis();
    if (redis) {
      try {
        const result = await redis.admit(call);
        this.#succeeded();
        return { result, store: 'redis' };
      } catch (err) {
        this.#failed(err);
        if (!failOpen) throw new RedisUnavailable(err);
      }
    } else if (this.#redis && !failOpen) {
      throw new RedisUnavailable(undefined);
    }
    const share = this.#share();
    return { result: await this.#local.admit(share === 1 ? call : scale(call, share)), store: 'local' };
  }

  /** Settles a decision in the store that made it (locally with the same share it was made with). */
  settle(store: StoreName, call: SettleCall): void {
    if (store === 'local') {
      const share = this.#share();
      const adjustments = share === 1 ? call.adjustments : call.adjustments.map((a) => scaleBucket(a, share));
      void this.#local.settle({ adjustments, release: call.release });
    } else {
      this.#redis?.settle(call).catch((err) => this.#options.onError?.(err));
    }
  }

  /**
   * Periodic upkeep: renew the live leases in their stores and, on Redis, say this instance is
   * alive and learn how many are. Failures only count; the next tick tries again.
   */
  async tick(
    leases: readonly Lease[],
    ttlMs: number,
    instancesKey: string,
    instanceId: string,
  ): Promise<void> {
    const local = leases.filter((l) => l.store === 'local');
    const remote = leases.filter((l) => l.store === 'redis');
    await this.#local.renew(local, ttlMs);
    if (!this.#redis) return;
    try {
      if (remote.length > 0) await this.#redis.renew(remote, ttlMs);
      this.#instances = Math.max(1, await this.#redis.heartbeat(instancesKey, instanceId, ttlMs));
    } catch (err) {
      this.#options.onError?.(err);
    }
  }

  async close(): Promise<void> {
    await this.#local.close();
    await this.#redis?.close();
  }

  /** The share of every limit this instance enforces locally: all of it without Redis. */
  #share(): number {
    return this.#redis ? 1 / this.#instances : 1;
  }

  /** Redis, when the breaker lets this call try it. */
  #tryRedis(): RedisStore | undefined {
    if (!this.#redis) return undefined;
    if (this.#openUntil === 0) return this.#redis;
    if (this.#probing || this.#clock() < this.#openUntil) return undefined;
    this.#probing = true;
    return this.#redis;
  }

  #succeeded(): void {
    this.#failures = 0;
    this.#probing = false;
    if (this.#openUntil !== 0 || this.#active !== 'redis') {
      this.#openUntil = 0;
      this.#switch('redis', 'Redis answered again');
    }
  }

  #failed(err: unknown): void {
    this.#options.onError?.(err);
    this.#failures++;
    if (this.#probing || this.#failures >= this.#options.failuresToOpen) {
      this.#probing = false;
      this.#openUntil = this.#clock() + this.#options.cooldownMs;
    }
    if (this.#active !== 'local') this.#switch('local', (err as Error)?.message ?? String(err));
  }

  #switch(to: StoreName, reason: string): void {
    this.#active = to;
    this.#options.onSwitch?.(to, reason);
  }
}

/** The same call with every limit cut to this instance's share (never below one request). */
function scale(call: AdmitCall, share: number): AdmitCall {
  return {
    buckets: call.buckets.map((b) => scaleBucket(b, share)),
    lease: call.lease && { ...call.lease, max: Math.max(1, Math.ceil(call.lease.max * share)) },
  };
}

function scaleBucket<B extends { ratePerMs: number; burst: number }>(bucket: B, share: number): B {
  return { ...bucket, ratePerMs: bucket.ratePerMs * share, burst: Math.max(1, bucket.burst * share) };
}
