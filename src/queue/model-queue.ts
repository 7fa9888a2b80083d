/**
 * The admission queue of one model (its deployment group) on this instance, pure: no timers, no
 * I/O, every method takes the time. At most `maxConcurrent` requests hold a slot (are calling the
 * model's deployments); the rest wait here, up to the bounds, and are started in this order:
 *
 * - by priority class, then by arrival;
 * - with aging: every `agingMs` a request has waited lifts it one class (batch -> standard ->
 *   critical), so low priority is never starved: a batch request waits at most 2 x agingMs behind
 *   a steady stream of critical ones before it competes with them as an equal (then by arrival).
 *
 * A request is refused at once, never left to wait in vain, when:
 * - the queue holds its class's share of `maxQueued` (batch may fill `shares.batch`, ...: low
 *   priority is shed before high priority fills), or `maxQueuedTotal` across all models is reached
 *   (the caller passes the total);
 * - its tenant already has `maxQueuedPerTenant` requests waiting (the tenant's doing: 429);
 * - its expected wait, from its position and the recent service time, passes its wait deadline.
 *
 * Each class is a FIFO (an intrusive doubly linked list), so a request that leaves early (client
 * gone, deadline passed) is unlinked in O(1) and the start order costs O(classes).
 */
import type { Priority } from '../config/defaults.ts';

export const CLASS_RANK: Readonly<Record<Priority, number>> = { critical: 0, standard: 1, batch: 2 };
const CLASSES = 3;

export interface QueueSettings {
  readonly maxConcurrent: number;
  readonly maxQueued: number;
  readonly agingMs: number;
  readonly shares: Readonly<Record<Priority, number>>;
  /** 0 = no per-tenant bound. */
  readonly maxQueuedPerTenant: number;
}

export class Waiter<T = unknown> {
  readonly priority: Priority;
  readonly tenant: string;
  readonly enqueuedAt: number;
  /** Latest time it may still be started (ms, the queue's clock). */
  readonly deadline: number;
  readonly value: T;
  prev: Waiter<T> | undefined;
  next: Waiter<T> | undefined;
  queued = false;

  constructor(priority: Priority, tenant: string, enqueuedAt: number, deadline: number, value: T) {
    this.priority = priority;
    this.tenant = tenant;
    this.enqueuedAt = enqueuedAt;
    this.deadline = deadline;
    this.value = value;
  }
}

export type Refusal =
  /** The class's share of the model's queue, or the instance's total, is in use (503). */
  | { readonly reason: 'full'; readonly retryAfterMs: number }
  /** This tenant already has its maximum waiting (429). */
  | { readonly reason: 'tenant_full'; readonly retryAfterMs: number }
  /** Expected wait past the request's wait deadline (503). */
  | { readonly reason: 'deadline'; readonly retryAfterMs: number; readonly expectedWaitMs: number };

export type EnqueueResult<T> =
  | { readonly started: true }
  | { readonly started: false; readonly waiter: Waiter<T>; readonly expectedWaitMs: number }
  | { readonly refused: Refusal };

class Fifo<T> {
  head: Waiter<T> | undefined;
  tail: Waiter<T> | undefined;
  size = 0;

  push(w: Waiter<T>): void {
    w.prev = this.tail;
    w.next = undefined;
    if (this.tail) this.tail.next = w;
    else this.head = w;
    this.tail = w;
    this.size++;
  }

  unlink(w: Waiter<T>): void {
    if (w.prev) w.prev.next = w.next;
    else this.head = w.next;
    if (w.next) w.next.prev = w.prev;
    else this.tail = w.prev;
    w.prev = undefined;
    w.next = undefined;
    this.size--;
  }
}

/** Service-time estimate: an exponentially weighted mean of recent slot hold times. */
const EWMA_WEIGHT = 0.2;

export class ModelQueue<T = unknown> {
  #settings: QueueSettings;
  readonly #fifos: Fifo<T>[] = Array.from({ length: CLASSES }, () => new Fifo<T>());
  readonly #perTenant = new Map<string, number>();
  #inFlight = 0;
  #serviceMs = 0;
  #served = 0;

  constructor(settings: QueueSettings) {
    this.#settings = settings;
  }

  get settings(): QueueSettings {
    return this.#settings;
  }

  /** New settings on reload; waiting and running requests stay. */
  configure(settings: QueueSettings): void {
    this.#settings = settings;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get queued(): number {
    return this.#fifos[0]!.size + this.#fifos[1]!.size + this.#fifos[2]!.size;
  }

  queuedBy(priority: Priority): number {
    return this.#fifos[CLASS_RANK[priority]]!.size;
  }

  /** Mean recent service time (ms), 0 before the first request finished. */
  get serviceMs(): number {
    return this.#serviceMs;
  }

  /** The longest current wait (ms). */
  oldestWaitMs(now: number): number {
    let oldest = now;
    for (const f of this.#fifos) if (f.head && f.head.enqueuedAt < oldest) oldest = f.head.enqueuedAt;
    return now - oldest;
  }

  /**
   * Expected wait of a request that would be the `position`-th (0-based) in line: the slots free up
   * at maxConcurrent / serviceMs per ms. 0 while there is no service time yet (nothing to go by).
   */
  expectedWaitMs(position: number): number {
    if (this.#serviceMs === 0) return 0;
    return Math.ceil(((position + 1) * this.#serviceMs) / this.#settings.maxConcurrent);
  }

  /**
   * A request arrives. It starts at once when a slot is free and nobody waits; otherwise it waits
   * (the caller keeps the waiter to cancel it) or is refused. `totalQueued` is the instance's
   * queued count across all models, checked against `maxQueuedTotal`.
   */
  enqueue(
    priority: Priority,
    tenant: string,
    now: number,
    deadline: number,
    value: T,
    total: { queued: number; max: number },
  ): EnqueueResult<T> {
    const s = this.#settings;
    const queued = this.queued;
    if (queued === 0 && this.#inFlight < s.maxConcurrent) {
      this.#inFlight++;
      return { started: true };
    }
    const drain = this.expectedWaitMs(queued);
    if (total.queued >= total.max || queued >= Math.floor(s.maxQueued * s.shares[priority])) {
      return { refused: { reason: 'full', retryAfterMs: drain } };
    }
    if (s.maxQueuedPerTenant > 0 && (this.#perTenant.get(tenant) ?? 0) >= s.maxQueuedPerTenant) {
      return { refused: { reason: 'tenant_full', retryAfterMs: drain } };
    }
    // Its position: everyone of its class or higher waits ahead of it (aging can only help it).
    let ahead = 0;
    for (let rank = 0; rank <= CLASS_RANK[priority]; rank++) ahead += this.#fifos[rank]!.size;
    const expectedWaitMs = this.expectedWaitMs(ahead);
    if (now + expectedWaitMs > deadline) {
      return { refused: { reason: 'deadline', retryAfterMs: drain, expectedWaitMs } };
    }
    const waiter = new Waiter<T>(priority, tenant, now, deadline, value);
    this.#fifos[CLASS_RANK[priority]]!.push(waiter);
    waiter.queued = true;
    this.#perTenant.set(tenant, (this.#perTenant.get(tenant) ?? 0) + 1);
    return { started: false, waiter, expectedWaitMs };
  }

  /** A waiter leaves before its turn (client gone, deadline passed). False if it already left. */
  remove(waiter: Waiter<T>): boolean {
    if (!waiter.queued) return false;
    this.#fifos[CLASS_RANK[waiter.priority]]!.unlink(waiter);
    waiter.queued = false;
    const n = (this.#perTenant.get(waiter.tenant) ?? 1) - 1;
    if (n === 0) this.#perTenant.delete(waiter.tenant);
    else this.#perTenant.set(waiter.tenant, n);
    return true;
  }

  /**
   * A running request finished after holding its slot `heldMs`. Returns the waiters to start now,
   * in order (they hold slots from now), and those whose deadline passed while waiting (removed).
   */
  release(now: number, heldMs: number): { start: Waiter<T>[]; expired: Waiter<T>[] } {
    this.#inFlight--;
    this.#serviceMs =
      this.#served === 0 ? heldMs : this.#serviceMs + EWMA_WEIGHT * (heldMs - this.#serviceMs);
    this.#served++;
    return this.fill(now);
  }

  /** Starts waiters while slots are free (after a release, or when maxConcurrent grew). */
  fill(now: number): { start: Waiter<T>[]; expired: Waiter<T>[] } {
    const start: Waiter<T>[] = [];
    const expired: Waiter<T>[] = [];
    while (this.#inFlight < this.#settings.maxConcurrent) {
      const next = this.#next(now);
      if (!next) break;
      this.remove(next);
      if (next.deadline < now) {
        expired.push(next);
        continue;
      }
      this.#inFlight++;
      start.push(next);
    }
    return { start, expired };
  }

  /** The head with the best aged class; ties go to the earlier arrival. */
  #next(now: number): Waiter<T> | undefined {
    let best: Waiter<T> | undefined;
    let bestRank = Number.POSITIVE_INFINITY;
    for (const fifo of this.#fifos) {
      const head = fifo.head;
      if (!head) continue;
      const aged = Math.max(
        0,
        CLASS_RANK[head.priority] - Math.floor((now - head.enqueuedAt) / this.#settings.agingMs),
      );
      if (aged < bestRank || (aged === bestRank && best && head.enqueuedAt < best.enqueuedAt)) {
        best = head;
        bestRank = aged;
      }
    }
    return best;
  }
}
