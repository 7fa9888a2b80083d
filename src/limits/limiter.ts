/**
 * The limiter layers a request meets after authentication, after Stripe (docs/limits.md):
 *   1. worker shedder: this instance's event loop is saturated, shed by priority (request hook,
 *      synchronous, see worker-shedder.ts);
 *   2. request rate: token buckets per tenant and per tenant+model, for requests and tokens;
 *   3. concurrency: the tenant's requests in flight across the fleet, as expiring leases;
 *   4. fleet: a model's in-flight capacity across the fleet, each priority up to its share;
 * and, per upstream attempt, the provider's outbound budget (execute() asks `outbound`).
 * Layers 2 and 3 are one store call (their keys share a hash tag), layer 4 a second one sent at
 * the same time.
 *
 * Pure arithmetic lives in the stores (token-bucket.ts); this file turns config into bucket
 * checks, decisions into errors, headers and metrics, and keeps the books: token estimates are
 * settled against real usage, leases are renewed while their request runs and released after.
 */
import { randomBytes } from 'node:crypto';
import type { Priority } from '../config/defaults.ts';
import { SluiceError } from '../errors/sluice-error.ts';
import type { Endpoint } from '../providers/openai.ts';
import type { ModelRoute, ProviderRuntime, Runtime, Tenant } from '../runtime.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { Usage } from '../upstream/usage.ts';
import { estimateTokens } from './estimate.ts';
import { type FailoverStore, type Lease, RedisUnavailable, type StoreName } from './failover-store.ts';
import { type BucketReport, rateLimitHeaders } from './headers.ts';
import { limitKeys } from './keys.ts';
import { type BucketSpec, compilePlan, type Plan, type TenantPlan } from './plan.ts';
import type { Adjustment, BucketCheck, BucketOutcome, LeaseCheck } from './store.ts';

/** A bucket a decision charged, and how much. */
interface Charged {
  readonly spec: BucketSpec;
  readonly cost: number;
}

/**
 * What one store decision left behind until its request ends: the buckets it charged and the lease
 * it took, in the store that made it. Settled with one store call, like the decision.
 */
export interface Hold {
  readonly store: StoreName;
  readonly charged: readonly Charged[];
  readonly lease: Lease | undefined;
}

export interface LimiterOptions {
  readonly store: FailoverStore;
  readonly metrics: Metrics;
  readonly clock?: () => number;
}

export interface AdmitInput {
  readonly runtime: Runtime;
  readonly tenant: Tenant;
  readonly priority: Priority;
  readonly model: ModelRoute;
  readonly endpoint: Endpoint;
  readonly body: Readonly<Record<string, unknown>>;
}

/** What a request holds from the limiter until it ends. Settle it exactly once. */
export class Admission {
  /** The request's token estimate (prompt + completion), also what outbound budgets charge. */
  readonly estimate: number;
  readonly #limiter: Limiter;
  readonly #holds: Hold[];
  #settled = false;

  constructor(limiter: Limiter, estimate: number, holds: Hold[]) {
    this.#limiter = limiter;
    this.estimate = estimate;
    this.#holds = holds;
  }

  /** Releases the leases and settles the token charges (see Limiter.settleHold). Idempotent. */
  settle(usage: Usage | undefined, answered: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    for (const hold of this.#holds) this.#limiter.settleHold(hold, usage, answered);
  }
}

/** An attempt's hold on its provider's outbound budget. */
export type OutboundResult =
  | { readonly ok: true; readonly hold: Hold | undefined }
  | { readonly ok: false; readonly retryAfterMs: number };

type TenantOutcome = { readonly hold: Hold; readonly headers: Record<string, string> };
interface TenantCall {
  readonly specs: BucketSpec[];
  readonly costs: number[];
  readonly lease: LeaseCheck | undefined;
}

export class Limiter {
  readonly instanceId = randomBytes(6).toString('hex');
  readonly #store: FailoverStore;
  readonly #metrics: Metrics;
  readonly #clock: () => number;
  readonly #plans = new WeakMap<Runtime, Plan>();
  readonly #live = new Set<Lease>();
  /** Provider name -> ms until which its outbound budget is known to be spent (saves round trips). */
  readonly #spent = new Map<string, number>();
  #leaseSeq = 0;
  #timer: NodeJS.Timeout | undefined;
  #runtime: Runtime | undefined;

  constructor(options: LimiterOptions) {
    this.#store = options.store;
    this.#metrics = options.metrics;
    this.#clock = options.clock ?? Date.now;
  }

  get store(): FailoverStore {
    return this.#store;
  }

  /** Leases held by requests running on this instance. */
  get liveLeases(): number {
    return this.#live.size;
  }

  /** Starts lease renewal and the instance heartbeat, every leaseTtlMs / 3 of the current config. */
  start(runtime: Runtime): void {
    this.#runtime = runtime;
    if (this.#timer) return;
    const tick = () => {
      const limits = this.#runtime!.config.limits;
      void this.#store
        .tick(
          [...this.#live],
          limits.leaseTtlMs,
          limitKeys(limits.redis.keyPrefix).instances,
          this.instanceId,
        )
        .finally(() => {
          if (this.#timer) this.#timer = setTimeout(tick, limits.leaseTtlMs / 3).unref();
        });
    };
    this.#timer = setTimeout(tick, 0).unref();
  }

  /** Follows a config reload (renewal period and key prefix come from the current config). */
  apply(runtime: Runtime): void {
    this.#runtime = runtime;
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#store.close();
  }

  /** The request's token estimate under the current settings. */
  estimate(input: Pick<AdmitInput, 'runtime' | 'endpoint' | 'body'>): number {
    return estimateTokens(input.endpoint, input.body, input.runtime.config.limits.tokenEstimate);
  }

  /** Sync: does any of layers 2-4 apply to this tenant and model? (Saves a promise when none does.) */
  applies(runtime: Runtime, tenant: string, model: string): boolean {
    const plan = this.#plan(runtime);
    return plan.tenants.has(tenant) || plan.fleet.has(model);
  }

  /**
   * Layers 2 to 4. Resolves to what the request holds (undefined when no limit applies to it), or
   * rejects with the SluiceError to answer; `setHeaders` receives the x-ratelimit-* headers first.
   *
   * The tenant decision (layers 2 and 3) and the fleet decision (layer 4) live in different Redis
   * Cluster slots, so they are two calls; they are sent together (one round trip) and whichever
   * admitted is undone when the other refused: a refused request spends nothing.
   */
  async admit(
    input: AdmitInput,
    setHeaders: (headers: Record<string, string>) => void,
  ): Promise<Admission | undefined> {
    const plan = this.#plan(input.runtime);
    const tenant = plan.tenants.get(input.tenant.name);
    const fleet = plan.fleet.get(input.model.name);
    if (!tenant && !fleet) return undefined;
    const estimate = this.estimate(input);
    const failOpen = tenant?.failOpen ?? input.runtime.config.limits.redis.failureMode === 'open';
    const call = tenant && this.#tenantCall(input, tenant, estimate);
    // A tenant whose limits are all for other models has nothing to decide here.
    const tenantCall = call && (call.specs.length > 0 || call.lease) ? call : undefined;
    if (!tenantCall && !fleet) return new Admission(this, estimate, []);
    const [t, f] = await Promise.allSettled([
      tenantCall && this.#decideTenant(tenantCall, failOpen),
      fleet && this.#decideFleet(input, fleet, failOpen),
    ]);
    const tenantOk = t.status === 'fulfilled' ? t.value : undefined;
    const fleetOk = f.status === 'fulfilled' ? f.value : undefined;
    if (tenantOk) setHeaders(tenantOk.headers);
    else if (t.status === 'rejected' && (t.reason as { headers?: Record<string, string> }).headers) {
      setHeaders((t.reason as { headers: Record<string, string> }).headers);
    }
    if (t.status === 'rejected' || f.status === 'rejected') {
      // Undo whichever side admitted, then answer with the tenant's refusal first (429 before 503).
      if (tenantOk) this.#undo(tenantOk.hold);
      if (fleetOk) this.#undo(fleetOk);
      throw t.status === 'rejected' ? t.reason : (f as PromiseRejectedResult).reason;
    }
    const holds: Hold[] = [];
    if (tenantOk) holds.push(tenantOk.hold);
    if (fleetOk) holds.push(fleetOk);
    return new Admission(this, estimate, holds);
  }

  /**
   * Layers 2 and 3 for a request with no model (the pass-through): the tenant-wide request bucket
   * and the concurrency lease, one store call. Token buckets are not charged: an arbitrary body
   * has no token estimate and the provider reports no usage for it. Per-model buckets and the
   * fleet layer have no model to apply to. Resolves to undefined when the tenant has neither limit.
   */
  async admitTenant(
    input: { readonly runtime: Runtime; readonly tenant: Tenant },
    setHeaders: (headers: Record<string, string>) => void,
  ): Promise<Admission | undefined> {
    const tenant = this.#plan(input.runtime).tenants.get(input.tenant.name);
    if (!tenant) return undefined;
    const specs = tenant.requests ? [tenant.requests] : [];
    const conc = tenant.concurrency;
    if (specs.length === 0 && !conc) return undefined;
    const lease = this.#lease(conc, input.runtime);
    try {
      const { hold, headers } = await this.#decideTenant(
        { specs, costs: specs.map(() => 1), lease },
        tenant.failOpen,
      );
      setHeaders(headers);
      return new Admission(this, 0, [hold]);
    } catch (err) {
      const headers = (err as { headers?: Record<string, string> }).headers;
      if (headers) setHeaders(headers);
      throw err;
    }
  }

  /** The tenant's buckets (tenant-wide, then for this model) and concurrency lease, as one call. */
  #tenantCall(input: AdmitInput, tenant: TenantPlan, estimate: number): TenantCall {
    const specs: BucketSpec[] = [];
    const costs: number[] = [];
    for (const rate of [tenant, tenant.models.get(input.model.name)]) {
      if (rate?.requests) {
        specs.push(rate.requests);
        costs.push(1);
      }
      if (rate?.tokens) {
        if (estimate > rate.tokens.burst && !rate.tokens.shadow) {
          this.#count('tokens', 'refused');
          throw new SluiceError(
            'tokens_exceed_limit',
            `This request may use up to ${estimate} tokens (prompt estimate + max_tokens), more than the ${Math.floor(rate.tokens.burst)} this tenant's token limit holds. Lower max_tokens.`,
            { type: 'tokens' },
          );
        }
        specs.push(rate.tokens);
        costs.push(estimate);
      }
    }
    return { specs, costs, lease: this.#lease(tenant.concurrency, input.runtime) };
  }

  /** A new concurrency lease for the tenant's cap, when it has one. */
  #lease(conc: TenantPlan['concurrency'], runtime: Runtime): TenantCall['lease'] {
    return (
      conc && {
        key: conc.key,
        id: this.#leaseId(),
        max: conc.max,
        ttlMs: runtime.config.limits.leaseTtlMs,
        shadow: conc.shadow,
      }
    );
  }

  async #decideTenant(call: TenantCall, failOpen: boolean): Promise<TenantOutcome> {
    const { specs, costs, lease } = call;
    const { result, store } = await this.#call(
      'requests',
      { buckets: specs.map((s, i) => check(s, costs[i]!)), lease },
      failOpen,
    );
    specs.forEach((spec, i) => {
      this.#count(spec.layer, outcome(result.buckets[i]!.allowed, spec.shadow, store, this.#store.hasRedis));
    });
    if (lease)
      this.#count('concurrency', outcome(result.lease!.allowed, lease.shadow, store, this.#store.hasRedis));
    const headers = headersFor(specs, result.buckets);
    if (!result.allowed) {
      const error =
        lease && !lease.shadow && !result.lease!.allowed
          ? new SluiceError(
              'concurrency_limit_exceeded',
              `This tenant already has ${lease.max} requests in flight, its limit; retry when one finishes.`,
              { retryAfterSeconds: 1 },
            )
          : rateLimited(specs, costs, result.buckets);
      throw Object.assign(error, { headers });
    }
    const hold: Hold = {
      store,
      charged: specs.flatMap((spec, i) => (result.buckets[i]!.allowed ? [{ spec, cost: costs[i]! }] : [])),
      lease: lease && result.lease!.allowed ? this.#hold({ key: lease.key, id: lease.id, store }) : undefined,
    };
    return { hold, headers };
  }

  async #decideFleet(
    input: AdmitInput,
    fleet: { key: string; maxInFlight: number; shadow: boolean },
    failOpen: boolean,
  ): Promise<Hold> {
    const share = input.runtime.config.limits.fleet.shares[input.priority];
    const max = Math.max(1, Math.floor(fleet.maxInFlight * share));
    const id = this.#leaseId();
    const { result, store } = await this.#call(
      'fleet',
      {
        buckets: [],
        lease: {
          key: fleet.key,
          id,
          max,
          ttlMs: input.runtime.config.limits.leaseTtlMs,
          shadow: fleet.shadow,
        },
      },
      failOpen,
    );
    this.#count('fleet', outcome(result.lease!.allowed, fleet.shadow, store, this.#store.hasRedis));
    if (!result.allowed) {
      throw new SluiceError(
        'capacity_exceeded',
        `Model '${input.model.name}' is at the fleet capacity kept for ${input.priority} traffic; retry shortly.`,
        { retryAfterSeconds: 1 },
      );
    }
    return {
      store,
      charged: [],
      lease: result.lease!.allowed ? this.#hold({ key: fleet.key, id, store }) : undefined,
    };
  }

  /** Does this config set any provider outbound budget? */
  hasOutboundBudgets(runtime: Runtime): boolean {
    return this.#plan(runtime).providers.size > 0;
  }

  /** Sync: ms until this provider's outbound budget is known to refill; 0 when not known to be spent. */
  outboundSpentFor(provider: ProviderRuntime): number {
    const until = this.#spent.get(provider.name);
    if (until === undefined) return 0;
    return Math.max(0, until - this.#clock());
  }

  /**
   * Takes one request and `estimate` tokens from a provider's outbound budget before an attempt
   * on it. When the budget is spent the deployment counts as unavailable until it refills.
   */
  async outbound(runtime: Runtime, provider: ProviderRuntime, estimate: number): Promise<OutboundResult> {
    const rate = this.#plan(runtime).providers.get(provider.name);
    if (!rate) return { ok: true, hold: undefined };
    const until = this.#spent.get(provider.name);
    if (until !== undefined) {
      const left = until - this.#clock();
      if (left > 0) return { ok: false, retryAfterMs: left };
      this.#spent.delete(provider.name);
    }
    const specs: BucketSpec[] = [];
    const costs: number[] = [];
    if (rate.requests) {
      specs.push(rate.requests);
      costs.push(1);
    }
    if (rate.tokens) {
      specs.push(rate.tokens);
      costs.push(Math.min(estimate, rate.tokens.burst));
    }
    let decision: Awaited<ReturnType<FailoverStore['admit']>>;
    try {
      decision = await this.#call(
        'provider_requests',
        { buckets: specs.map((s, i) => check(s, costs[i]!)) },
        true,
      );
    } catch {
      return { ok: true, hold: undefined };
    }
    const { result, store } = decision;
    specs.forEach((spec, i) => {
      this.#count(spec.layer, outcome(result.buckets[i]!.allowed, spec.shadow, store, this.#store.hasRedis));
    });
    if (!result.allowed) {
      const retryAfterMs = Math.max(
        1,
        ...result.buckets.map((b, i) => (specs[i]!.shadow ? 0 : b.retryAfterMs)),
      );
      this.#spent.set(provider.name, this.#clock() + retryAfterMs);
      return { ok: false, retryAfterMs };
    }
    return {
      ok: true,
      hold: {
        store,
        charged: specs.flatMap((spec, i) => (result.buckets[i]!.allowed ? [{ spec, cost: costs[i]! }] : [])),
        lease: undefined,
      },
    };
  }

  /** Gives back all of an outbound hold (the attempt failed: the provider did no work for it). */
  refund(hold: Hold | undefined): void {
    if (hold) this.#undo(hold);
  }

  /** Ends a request's holds: its admission and the outbound hold of the attempt that answered. */
  settle(
    admission: Admission | undefined,
    outbound: Hold | undefined,
    usage: Usage | undefined,
    answered: boolean,
  ): void {
    admission?.settle(usage, answered);
    if (outbound) this.settleHold(outbound, usage, answered);
  }

  /**
   * Releases the hold's lease and settles its token charges with real usage: the difference is
   * charged or refunded. Without usage, a request that got no answer is refunded in full and one
   * that did keeps the estimate. Request buckets keep their charge: a request is a request.
   */
  settleHold(hold: Hold, usage: Usage | undefined, answered: boolean): void {
    const actual = usage ? usage.promptTokens + usage.completionTokens : undefined;
    const adjustments: Adjustment[] = [];
    for (const { spec, cost } of hold.charged) {
      if (spec.layer !== 'tokens' && spec.layer !== 'provider_tokens') continue;
      const delta = actual !== undefined ? actual - cost : answered ? 0 : -cost;
      if (delta !== 0)
        adjustments.push({ key: spec.key, ratePerMs: spec.ratePerMs, burst: spec.burst, delta });
    }
    this.#finish(hold, adjustments);
  }

  /** Gives everything of a hold back: its lease and every charge. */
  #undo(hold: Hold): void {
    this.#finish(
      hold,
      hold.charged.map(({ spec, cost }) => ({
        key: spec.key,
        ratePerMs: spec.ratePerMs,
        burst: spec.burst,
        delta: -cost,
      })),
    );
  }

  #finish(hold: Hold, adjustments: Adjustment[]): void {
    const lease = hold.lease && this.#live.delete(hold.lease) ? hold.lease : undefined;
    if (adjustments.length === 0 && !lease) return;
    this.#store.settle(hold.store, { adjustments, release: lease && { key: lease.key, id: lease.id } });
  }

  async #call(
    layer: string,
    call: Parameters<FailoverStore['admit']>[0],
    failOpen: boolean,
  ): ReturnType<FailoverStore['admit']> {
    const started = performance.now();
    try {
      const decision = await this.#store.admit(call, failOpen);
      // Local decisions take microseconds; their timing is only worth recording as a fallback.
      if (this.#store.hasRedis) {
        this.#metrics.hot.limiterDuration.get(decision.store).observe((performance.now() - started) / 1000);
      }
      return decision;
    } catch (err) {
      if (err instanceof RedisUnavailable) {
        this.#count(layer, 'failed_closed');
        throw new SluiceError(
          'limiter_unavailable',
          'Rate limits cannot be checked right now and this tenant is set to fail closed; retry shortly.',
          { retryAfterSeconds: 1 },
        );
      }
      throw err;
    }
  }

  #hold(lease: Lease): Lease {
    this.#live.add(lease);
    return lease;
  }

  #leaseId(): string {
    this.#leaseSeq = (this.#leaseSeq + 1) % Number.MAX_SAFE_INTEGER;
    return `${this.instanceId}:${this.#leaseSeq}`;
  }

  #count(layer: string, result: string): void {
    this.#metrics.hot.limiterDecisions.get(layer, result).inc();
  }

  #plan(runtime: Runtime): Plan {
    let plan = this.#plans.get(runtime);
    if (!plan) {
      plan = compilePlan(runtime);
      this.#plans.set(runtime, plan);
    }
    return plan;
  }
}

/**
 * The decision label: allowed, refused, shadow_refused, or local (allowed by the local fallback
 * while Redis is away; with no Redis configured, local is simply where limits live: allowed).
 */
function outcome(allowed: boolean, shadow: boolean, store: StoreName, fallback: boolean): string {
  if (!allowed) return shadow ? 'shadow_refused' : 'refused';
  return store === 'local' && fallback ? 'local' : 'allowed';
}

function check(spec: BucketSpec, cost: number): BucketCheck {
  return { key: spec.key, ratePerMs: spec.ratePerMs, burst: spec.burst, cost, shadow: spec.shadow };
}

function rateLimited(specs: BucketSpec[], costs: number[], outcomes: readonly BucketOutcome[]): SluiceError {
  let worst = -1;
  outcomes.forEach((o, i) => {
    if (!o.allowed && !specs[i]!.shadow && (worst < 0 || o.retryAfterMs > outcomes[worst]!.retryAfterMs))
      worst = i;
  });
  const spec = specs[worst]!;
  const kind = spec.layer === 'tokens' ? 'tokens' : 'requests';
  const seconds = Math.max(1, Math.ceil(outcomes[worst]!.retryAfterMs / 1000));
  return new SluiceError(
    'rate_limit_exceeded',
    `Rate limit reached on ${kind}: limit ${spec.rate} (burst ${Math.floor(spec.burst)}), remaining ${outcomes[worst]!.remaining}, requested ${costs[worst]}. Retry in ${seconds} s.`,
    { retryAfterSeconds: seconds, type: kind },
  );
}

/** The tightest bucket of each kind speaks for it. */
function headersFor(
  specs: readonly BucketSpec[],
  outcomes: readonly BucketOutcome[],
): Record<string, string> {
  let requests: BucketReport | undefined;
  let tokens: BucketReport | undefined;
  specs.forEach((spec, i) => {
    const o = outcomes[i]!;
    const report = { limit: spec.headerLimit, remaining: o.remaining, resetMs: o.resetMs };
    if (spec.layer === 'requests') {
      if (!requests || report.remaining < requests.remaining) requests = report;
    } else if (!tokens || report.remaining < tokens.remaining) tokens = report;
  });
  return rateLimitHeaders(requests, tokens);
}
