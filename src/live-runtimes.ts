/**
 * The config snapshots requests are running on: the current one, and each retired one until its
 * last request ends. A request keeps the snapshot it started with for its whole life (queue wait,
 * retries, a stream that lasts minutes), so what that snapshot refers to (a deployment's health and
 * breaker, an origin's pool) must outlive a reload that drops it. `onChange` runs when the set
 * changes (a swap, or a retired snapshot's last request ending) so shared state can be reconciled
 * with every snapshot still in use.
 */
import type { Runtime } from './runtime.ts';

export class LiveRuntimes {
  #current: Runtime;
  #currentInUse = 0;
  /** Retired snapshots with requests still on them, and how many. */
  readonly #retired = new Map<Runtime, number>();
  readonly #onChange: (why: 'swap' | 'retired') => void;

  constructor(initial: Runtime, onChange: (why: 'swap' | 'retired') => void) {
    this.#current = initial;
    this.#onChange = onChange;
  }

  get current(): Runtime {
    return this.#current;
  }

  /** The snapshot for a new request; give it back with release() when the request ends. */
  acquire(): Runtime {
    this.#currentInUse++;
    return this.#current;
  }

  release(runtime: Runtime): void {
    if (runtime === this.#current) {
      this.#currentInUse--;
      return;
    }
    const left = (this.#retired.get(runtime) ?? 1) - 1;
    if (left > 0) {
      this.#retired.set(runtime, left);
      return;
    }
    this.#retired.delete(runtime);
    this.#onChange('retired');
  }

  swap(next: Runtime): void {
    if (next === this.#current) return;
    if (this.#currentInUse > 0) this.#retired.set(this.#current, this.#currentInUse);
    this.#current = next;
    // A snapshot can come back (a reload back to a config still compiled): its count comes along.
    this.#currentInUse = this.#retired.get(next) ?? 0;
    this.#retired.delete(next);
    this.#onChange('swap');
  }

  /** Retired snapshots still in use, oldest first. */
  retired(): IterableIterator<Runtime> {
    return this.#retired.keys();
  }
}
