/**
 * A retry budget per deployment (after Finagle and Envoy): retries may add at most `ratio` of the
 * first attempts seen in the last `windowMs`, plus a small floor of `minPerSecond` so a quiet
 * deployment can still retry. During an outage the budget runs dry and traffic to the provider
 * stays near 1x instead of multiplying by the attempt count. Pure: the clock is passed in.
 */
export interface RetryBudgetSettings {
  ratio: number;
  minPerSecond: number;
  windowMs: number;
}

const BUCKETS = 10;

export class RetryBudget {
  readonly #settings: RetryBudgetSettings;
  readonly #bucketMs: number;
  readonly #requests = new Array<number>(BUCKETS).fill(0);
  readonly #retries = new Array<number>(BUCKETS).fill(0);
  #bucketStart = 0;
  #index = 0;

  constructor(settings: RetryBudgetSettings) {
    this.#settings = settings;
    this.#bucketMs = settings.windowMs / BUCKETS;
  }

  /** A first attempt was sent. */
  recordRequest(now: number): void {
    this.#advance(now);
    this.#requests[this.#index]!++;
  }

  /** Takes one retry from the budget if there is one left. */
  tryRetry(now: number): boolean {
    this.#advance(now);
    const requests = sum(this.#requests);
    const retries = sum(this.#retries);
    const allowance =
      requests * this.#settings.ratio + (this.#settings.minPerSecond * this.#settings.windowMs) / 1000;
    if (retries + 1 > allowance) return false;
    this.#retries[this.#index]!++;
    return true;
  }

  #advance(now: number): void {
    if (this.#bucketStart === 0) {
      this.#bucketStart = now;
      return;
    }
    let steps = Math.floor((now - this.#bucketStart) / this.#bucketMs);
    if (steps <= 0) return;
    this.#bucketStart += steps * this.#bucketMs;
    if (steps > BUCKETS) steps = BUCKETS;
    for (let i = 0; i < steps; i++) {
      this.#index = (this.#index + 1) % BUCKETS;
      this.#requests[this.#index] = 0;
      this.#retries[this.#index] = 0;
    }
  }
}

function sum(values: number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
