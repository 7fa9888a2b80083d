/**
 * A circuit breaker per deployment. opossum is used here and nowhere else: it keeps the rolling
 * window, opens on the error rate once the window has enough volume, half-opens after the
 * cooldown and lets one probe through at a time, closing on its success.
 */
import CircuitBreaker from 'opossum';

export interface BreakerSettings {
  errorThresholdPercent: number;
  volumeThreshold: number;
  windowMs: number;
  cooldownMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half_open';

type Action = () => Promise<unknown>;

export class Breaker {
  readonly id: string;
  readonly settings: BreakerSettings;
  readonly #circuit: CircuitBreaker<[Action], unknown>;
  #openedAt = 0;

  constructor(
    id: string,
    settings: BreakerSettings,
    countsAsFailure: (err: unknown) => boolean,
    onStateChange: (id: string, state: BreakerState) => void,
  ) {
    this.id = id;
    this.settings = settings;
    this.#circuit = new CircuitBreaker((action: Action) => action(), {
      timeout: false, // the timeout ladder bounds every attempt
      errorThresholdPercentage: settings.errorThresholdPercent,
      volumeThreshold: settings.volumeThreshold,
      rollingCountTimeout: settings.windowMs,
      rollingCountBuckets: 10,
      resetTimeout: settings.cooldownMs,
      // Filtered errors count as successes: a 400 or a 429 says nothing about the deployment's health.
      errorFilter: (err: unknown) => !countsAsFailure(err),
    });
    this.#circuit.on('open', () => {
      this.#openedAt = Date.now();
      onStateChange(id, 'open');
    });
    this.#circuit.on('halfOpen', () => onStateChange(id, 'half_open'));
    this.#circuit.on('close', () => onStateChange(id, 'closed'));
  }

  /** Would a call be let through now? (Closed, or half-open with no probe in flight.) */
  admits(): boolean {
    return this.#circuit.closed || this.#circuit.pendingClose;
  }

  state(): BreakerState {
    if (this.#circuit.closed) return 'closed';
    return this.#circuit.halfOpen ? 'half_open' : 'open';
  }

  /** When an open breaker will let a probe through (epoch ms); 0 when not open. */
  halfOpenAt(): number {
    return this.state() === 'open' ? this.#openedAt + this.settings.cooldownMs : 0;
  }

  /** Runs one attempt through the breaker; its outcome is recorded when the promise settles. */
  run<T>(action: () => Promise<T>): Promise<T> {
    return this.#circuit.fire(action) as Promise<T>;
  }

  counts(): { fires: number; failures: number; successes: number; rejects: number } {
    const s = this.#circuit.stats;
    return { fires: s.fires, failures: s.failures, successes: s.successes, rejects: s.rejects };
  }

  shutdown(): void {
    this.#circuit.shutdown();
  }
}

/** The error opossum throws when it refuses a call. */
export function isBreakerRejection(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'EOPENBREAKER';
}
