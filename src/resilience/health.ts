/**
 * Per-deployment health that outlives a single request and survives config reloads: the breaker,
 * the retry budget and the count of outstanding calls. A reload keeps the state of every
 * deployment that still exists with the same settings, so a breaker that is open stays open, and
 * of every deployment a running request's (older) config snapshot still refers to.
 */
import type { Runtime } from '../runtime.ts';
import { Breaker, type BreakerSettings, type BreakerState } from './breaker.ts';
import { RetryBudget } from './retry-budget.ts';

export class DeploymentHealth {
  readonly breaker: Breaker;
  readonly budget: RetryBudget;
  /** Upstream calls in flight right now (for least-outstanding selection). */
  outstanding = 0;
  readonly #key: string;

  constructor(breaker: Breaker, budget: RetryBudget, key: string) {
    this.breaker = breaker;
    this.budget = budget;
    this.#key = key;
  }

  sameSettings(key: string): boolean {
    return this.#key === key;
  }
}

export interface HealthSnapshot {
  deployment: string;
  state: BreakerState;
  outstanding: number;
  halfOpenAt: string | null;
  fires: number;
  failures: number;
  successes: number;
  rejects: number;
}

const NONE: ReadonlySet<string> = new Set();

export class HealthRegistry {
  readonly #byId = new Map<string, DeploymentHealth>();
  readonly #countsAsFailure: (countRateLimits: boolean) => (err: unknown) => boolean;
  readonly #onStateChange: (id: string, state: BreakerState) => void;

  constructor(
    countsAsFailure: (countRateLimits: boolean) => (err: unknown) => boolean,
    onStateChange: (id: string, state: BreakerState) => void,
  ) {
    this.#countsAsFailure = countsAsFailure;
    this.#onStateChange = onStateChange;
  }

  /**
   * Make the registry match `runtime`, keeping the state of `stillInUse` too: deployments that only
   * an older config snapshot still has requests on (they keep their health until those end).
   */
  reconcile(runtime: Runtime, stillInUse: ReadonlySet<string> = NONE): void {
    const { breaker, retry } = runtime.config;
    const key = JSON.stringify([breaker, retry]);
    const settings: BreakerSettings = {
      errorThresholdPercent: breaker.errorThresholdPercent,
      volumeThreshold: breaker.volumeThreshold,
      windowMs: breaker.windowMs,
      cooldownMs: breaker.cooldownMs,
    };
    const ids = new Set<string>();
    for (const route of runtime.models.values()) for (const d of route.deployments) ids.add(d.id);
    for (const id of ids) {
      const current = this.#byId.get(id);
      if (current?.sameSettings(key)) continue;
      current?.breaker.shutdown();
      const health = new DeploymentHealth(
        new Breaker(id, settings, this.#countsAsFailure(breaker.countRateLimits), this.#onStateChange),
        new RetryBudget({
          ratio: retry.budgetRatio,
          minPerSecond: retry.budgetMinPerSecond,
          windowMs: retry.budgetWindowMs,
        }),
        key,
      );
      this.#byId.set(id, health);
      this.#onStateChange(id, 'closed');
    }
    for (const [id, health] of this.#byId) {
      if (!ids.has(id) && !stillInUse.has(id)) {
        health.breaker.shutdown();
        this.#byId.delete(id);
      }
    }
  }

  get(id: string): DeploymentHealth {
    const health = this.#byId.get(id);
    if (!health) throw new Error(`no health state for deployment ${id}`);
    return health;
  }

  snapshot(): HealthSnapshot[] {
    return [...this.#byId].map(([deployment, h]) => {
      const halfOpenAt = h.breaker.halfOpenAt();
      return {
        deployment,
        state: h.breaker.state(),
        outstanding: h.outstanding,
        halfOpenAt: halfOpenAt ? new Date(halfOpenAt).toISOString() : null,
        ...h.breaker.counts(),
      };
    });
  }

  shutdown(): void {
    for (const h of this.#byId.values()) h.breaker.shutdown();
    this.#byId.clear();
  }
}
