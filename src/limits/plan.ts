/**
 * The limits section compiled for the limiter: each bucket as a key, a rate per ms, a burst and
 * what its headers say; tenant plans built lazily, fleet capacities and provider budgets. Pure: no
 * store, no clock.
 */
import type { BucketConfig, TenantLimitsConfig } from '../config/schema.ts';
import type { Runtime } from '../runtime.ts';
import { headerLimit } from './headers.ts';
import { limitKeys } from './keys.ts';

export type Layer = 'requests' | 'tokens' | 'provider_requests' | 'provider_tokens';

export interface BucketSpec {
  readonly key: string;
  readonly ratePerMs: number;
  readonly burst: number;
  /** What x-ratelimit-limit-* reports for this bucket: its rate (headers.ts headerLimit). */
  readonly headerLimit: number;
  /** The configured rate, for messages: "20 per minute". */
  readonly rate: string;
  readonly shadow: boolean;
  readonly layer: Layer;
}

export interface RatePlan {
  readonly requests: BucketSpec | undefined;
  readonly tokens: BucketSpec | undefined;
}

export interface TenantPlan extends RatePlan {
  readonly models: ReadonlyMap<string, RatePlan>;
  readonly concurrency: { key: string; max: number; shadow: boolean } | undefined;
  readonly failOpen: boolean;
}

export interface Plan {
  readonly tenants: TenantPlans;
  readonly fleet: ReadonlyMap<string, { key: string; maxInFlight: number; shadow: boolean }>;
  readonly providers: ReadonlyMap<string, RatePlan>;
}

const PER_MS = { second: 1_000, minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;

/**
 * A config's tenant plans, each built on its tenant's first request: building all of them at once
 * held the event loop for ~180 ms on the first request after a reload of 50,000 tenants.
 */
export class TenantPlans {
  readonly #source: Readonly<Record<string, TenantLimitsConfig>>;
  readonly #build: (name: string, limits: TenantLimitsConfig) => TenantPlan;
  readonly #built = new Map<string, TenantPlan>();

  constructor(
    source: Readonly<Record<string, TenantLimitsConfig>>,
    build: (name: string, limits: TenantLimitsConfig) => TenantPlan,
  ) {
    this.#source = source;
    this.#build = build;
  }

  has(name: string): boolean {
    return Object.hasOwn(this.#source, name);
  }

  get(name: string): TenantPlan | undefined {
    let plan = this.#built.get(name);
    if (plan === undefined && Object.hasOwn(this.#source, name)) {
      plan = this.#build(name, this.#source[name]!);
      this.#built.set(name, plan);
    }
    return plan;
  }
}

export function compilePlan(runtime: Runtime): Plan {
  const limits = runtime.config.limits;
  const keys = limitKeys(limits.redis.keyPrefix);
  const bucket = (cfg: BucketConfig | undefined, key: string, layer: Layer): BucketSpec | undefined =>
    cfg && {
      key,
      ratePerMs: cfg.limit / PER_MS[cfg.per],
      burst: cfg.burst ?? cfg.limit,
      headerLimit: headerLimit(cfg.limit, cfg.per),
      rate: `${cfg.limit} per ${cfg.per}`,
      shadow: cfg.shadow,
      layer,
    };
  const tenants = new TenantPlans(limits.tenants ?? {}, (name, t) => {
    const models = new Map<string, RatePlan>();
    for (const [model, m] of Object.entries(t.models ?? {})) {
      models.set(model, {
        requests: bucket(m.requests, keys.tenantModel(name, model, 'requests'), 'requests'),
        tokens: bucket(m.tokens, keys.tenantModel(name, model, 'tokens'), 'tokens'),
      });
    }
    return {
      requests: bucket(t.requests, keys.tenant(name, 'requests'), 'requests'),
      tokens: bucket(t.tokens, keys.tenant(name, 'tokens'), 'tokens'),
      models,
      concurrency: t.concurrency && {
        key: keys.tenantInFlight(name),
        max: t.concurrency.max,
        shadow: t.concurrency.shadow,
      },
      failOpen: (t.failureMode ?? limits.redis.failureMode) === 'open',
    };
  });
  const fleet = new Map<string, { key: string; maxInFlight: number; shadow: boolean }>();
  for (const [model, f] of Object.entries(limits.fleet.models ?? {})) {
    fleet.set(model, { key: keys.fleetInFlight(model), maxInFlight: f.maxInFlight, shadow: f.shadow });
  }
  const providers = new Map<string, RatePlan>();
  for (const [name, p] of Object.entries(limits.providers ?? {})) {
    providers.set(name, {
      requests: bucket(p.requests, keys.provider(name, 'requests'), 'provider_requests'),
      tokens: bucket(p.tokens, keys.provider(name, 'tokens'), 'provider_tokens'),
    });
  }
  return { tenants, fleet, providers };
}
