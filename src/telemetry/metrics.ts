/**
 * prom-client is used here and nowhere else. Each app gets its own registry (tests run several
 * apps in one process). Label values are bounded: routes are route patterns, models are
 * configured names or "unknown", statuses are HTTP codes, codes come from the error catalog,
 * tenants on the token and cost counters are capped by `metrics` settings (TenantLabels).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  /** Cached children for the per-request hot path. */
  readonly hot: {
    readonly requests: LabelledChildren<{ inc(value?: number): void }>;
    readonly duration: LabelledChildren<{ observe(value: number): void }>;
    readonly upstreamDuration: LabelledChildren<{ observe(value: number): void }>;
    readonly ttft: LabelledChildren<{ observe(value: number): void }>;
    readonly chunkGap: LabelledChildren<{ observe(value: number): void }>;
    readonly tokens: LabelledChildren<{ inc(value?: number): void }>;
    readonly cost: LabelledChildren<{ inc(value?: number): void }>;
    readonly limiterDecisions: LabelledChildren<{ inc(value?: number): void }>;
    readonly limiterDuration: LabelledChildren<{ observe(value: number): void }>;
  };
  /** The `tenant` label value of the token and cost counters for this tenant (see TenantLabels). */
  tenantLabel(settings: TenantLabelSettings, tenant: string): string;
  readonly requests: Counter<'route' | 'model' | 'status' | 'code'>;
  readonly duration: Histogram<'route' | 'model'>;
  readonly inFlight: Gauge;
  readonly upstreamDuration: Histogram<'provider' | 'deployment' | 'outcome'>;
  readonly ttft: Histogram<'model'>;
  readonly chunkGap: Histogram<'deployment'>;
  readonly tokens: Counter<'tenant' | 'model' | 'kind'>;
  readonly cost: Counter<'tenant' | 'model'>;
  readonly fallbacks: Counter<'model' | 'fallback'>;
  readonly providerRateLimits: Counter<'provider'>;
  readonly upstreamConnections: Gauge<'origin' | 'state'>;
  /** Where the pool gauges read their values at scrape time. */
  setPoolSource(
    source: () => Iterable<{ origin: string; connected: number; busy: number; pending: number }>,
  ): void;
  readonly streamsTruncated: Counter<'deployment' | 'code'>;
  readonly configReloads: Counter<'result'>;
  readonly connectionsRefused: Counter;
  readonly clientErrors: Counter<'code'>;
  readonly authFailures: Counter<'kind'>;
  readonly breakerState: Gauge<'deployment'>;
  readonly retries: Counter<'deployment'>;
  readonly retryBudgetExhausted: Counter<'deployment'>;
  readonly attemptFailures: Counter<'deployment' | 'class'>;
  readonly limiterDecisions: Counter<'layer' | 'outcome'>;
  readonly limiterDuration: Histogram<'store'>;
  readonly limiterStore: Gauge<'store'>;
  readonly limiterStoreErrors: Counter;
  readonly workerShedLevel: Gauge;
  readonly eventLoopDelay: Gauge;
  readonly eventLoopUtilization: Gauge;
  readonly queueDepth: Gauge<'model'>;
  readonly queueInFlight: Gauge<'model'>;
  /** Where the queue gauges read their values at scrape time. */
  setQueueSource(source: () => Iterable<{ model: string; queued: number; inFlight: number }>): void;
  readonly queueWait: Histogram<'model'>;
  readonly queueRefusals: Counter<'model' | 'reason'>;
  readonly logBuffered: Gauge;
  readonly logSpillBytes: Gauge;
  readonly logHealthy: Gauge;
  readonly logRows: Counter<'outcome'>;
  readonly logWrites: Counter<'outcome'>;
  readonly logWriteDuration: Histogram;
  readonly logMaintenance: Counter<'outcome'>;
  readonly logPartitions: Counter<'action'>;
  /** Where the request-log gauges read their values at scrape time. */
  setRequestLogSource(source: () => { buffered: number; spillBytes: number; healthy: boolean }): void;
}

/** Gauge values of sluice_breaker_state. */
export const BREAKER_STATE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const requests = new Counter({
    name: 'sluice_requests_total',
    help: 'Requests answered, by route pattern, model, HTTP status and error code ("" on success).',
    labelNames: ['route', 'model', 'status', 'code'],
    registers,
  });
  const duration = new Histogram({
    name: 'sluice_request_duration_seconds',
    help: 'Time from request received to response finished (streams: last byte).',
    labelNames: ['route', 'model'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const upstreamDuration = new Histogram({
    name: 'sluice_upstream_duration_seconds',
    help: 'Upstream attempts: time until the answer was complete, by provider, deployment and outcome (ok or error code); its _count is the attempt rate.',
    labelNames: ['provider', 'deployment', 'outcome'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const ttft = new Histogram({
    name: 'sluice_ttft_seconds',
    help: 'Streams: time from request received to the first byte sent to the client, by model.',
    labelNames: ['model'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const chunkGap = new Histogram({
    name: 'sluice_stream_chunk_gap_seconds',
    help: 'Streams: time between two chunks from the provider (time paused for a slow client excluded), by deployment.',
    labelNames: ['deployment'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const tokens = new Counter({
    name: 'sluice_tokens_total',
    help: 'Tokens reported by providers, by tenant, the model asked for, and kind (prompt, completion).',
    labelNames: ['tenant', 'model', 'kind'],
    registers,
  });
  const cost = new Counter({
    name: 'sluice_cost_usd_total',
    help: 'Cost in USD (tokens x the pricing of the deployment that answered), by tenant and the model asked for.',
    labelNames: ['tenant', 'model'],
    registers,
  });
  let poolSource: () => Iterable<{ origin: string; connected: number; busy: number; pending: number }> =
    () => [];
  // Read at scrape time (no per-request gauge updates); set by the admission queues.
  let queueSource: () => Iterable<{ model: string; queued: number; inFlight: number }> = () => [];
  let logSource: (() => { buffered: number; spillBytes: number; healthy: boolean }) | undefined;
  const limiterDecisions = new Counter({
    name: 'sluice_limiter_decisions_total',
    help: 'Limiter decisions by layer (worker, requests, tokens, concurrency, fleet, provider_requests, provider_tokens) and outcome (allowed, refused, shadow_refused, local, failed_closed).',
    labelNames: ['layer', 'outcome'],
    registers,
  });
  const limiterDuration = new Histogram({
    name: 'sluice_limiter_duration_seconds',
    help: 'Time one limiter decision took, by the store that made it (redis, local).',
    labelNames: ['store'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers,
  });
  const tenantLabels = new TenantLabels();
  return {
    registry,
    tenantLabel: (settings, tenant) => tenantLabels.label(settings, tenant),
    requests,
    duration,
    upstreamDuration,
    ttft,
    chunkGap,
    cost,
    tokens,
    fallbacks: new Counter({
      name: 'sluice_fallbacks_total',
      help: 'Requests answered by a fallback model, by the model asked for and the fallback that answered.',
      labelNames: ['model', 'fallback'],
      registers,
    }),
    providerRateLimits: new Counter({
      name: 'sluice_provider_rate_limited_total',
      help: 'Upstream attempts a provider answered with 429, by provider.',
      labelNames: ['provider'],
      registers,
    }),
    upstreamConnections: new Gauge({
      name: 'sluice_upstream_connections',
      help: 'Upstream pool per origin: connections open (connected), in use (busy), and requests waiting for one (pending).',
      labelNames: ['origin', 'state'],
      registers,
      collect() {
        this.reset();
        for (const p of poolSource()) {
          this.set({ origin: p.origin, state: 'connected' }, p.connected);
          this.set({ origin: p.origin, state: 'busy' }, p.busy);
          this.set({ origin: p.origin, state: 'pending' }, p.pending);
        }
      },
    }),
    setPoolSource(source) {
      poolSource = source;
    },
    hot: {
      requests: new LabelledChildren((v) => requests.labels(...v)),
      duration: new LabelledChildren((v) => duration.labels(...v)),
      upstreamDuration: new LabelledChildren((v) => upstreamDuration.labels(...v)),
      ttft: new LabelledChildren((v) => ttft.labels(...v)),
      chunkGap: new LabelledChildren((v) => chunkGap.labels(...v)),
      tokens: new LabelledChildren((v) => tokens.labels(...v)),
      cost: new LabelledChildren((v) => cost.labels(...v)),
      limiterDecisions: new LabelledChildren((v) => limiterDecisions.labels(...v)),
      limiterDuration: new LabelledChildren((v) => limiterDuration.labels(...v)),
    },
    limiterDecisions,
    limiterDuration,
    limiterStore: new Gauge({
      name: 'sluice_limiter_store',
      help: 'Where limit decisions are made now: 1 on the active store (redis, or local memory), 0 on the other.',
      labelNames: ['store'],
      registers,
    }),
    limiterStoreErrors: new Counter({
      name: 'sluice_limiter_store_errors_total',
      help: 'Failed Redis commands of the limiter (timeouts, connection errors).',
      registers,
    }),
    workerShedLevel: new Gauge({
      name: 'sluice_worker_shed_level',
      help: 'Priority classes this instance sheds because its event loop is saturated: 0 none, 1 batch, 2 batch and standard, 3 all.',
      registers,
    }),
    eventLoopDelay: new Gauge({
      name: 'sluice_event_loop_delay_seconds',
      help: 'p99 event-loop delay over the last load sample.',
      registers,
    }),
    queueDepth: new Gauge({
      name: 'sluice_queue_depth',
      help: "Requests waiting in a model's admission queue on this instance (the autoscaling signal).",
      labelNames: ['model'],
      registers,
      collect() {
        for (const q of queueSource()) this.set({ model: q.model }, q.queued);
      },
    }),
    queueInFlight: new Gauge({
      name: 'sluice_queue_in_flight',
      help: "Requests holding one of a model's maxConcurrent slots on this instance.",
      labelNames: ['model'],
      registers,
      collect() {
        for (const q of queueSource()) this.set({ model: q.model }, q.inFlight);
      },
    }),
    setQueueSource(source) {
      queueSource = source;
    },
    logRows: new Counter({
      name: 'sluice_request_log_rows_total',
      help: 'Request-log rows by outcome: written (inserted, replays included), spilled (to the spill directory), replayed (from it), dropped_spill_full, dropped_spill_error, dropped_spill_backlog (the disk slower than the traffic), dropped_rejected (refused by the database for its content).',
      labelNames: ['outcome'],
      registers,
    }),
    logWrites: new Counter({
      name: 'sluice_request_log_writes_total',
      help: 'Batch INSERTs into the request log by outcome (ok, error).',
      labelNames: ['outcome'],
      registers,
    }),
    logWriteDuration: new Histogram({
      name: 'sluice_request_log_write_duration_seconds',
      help: 'Time one batch INSERT into the request log took.',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    logMaintenance: new Counter({
      name: 'sluice_request_log_maintenance_total',
      help: 'Partition maintenance runs by outcome (ran, skipped: another instance held the lock, failed).',
      labelNames: ['outcome'],
      registers,
    }),
    logPartitions: new Counter({
      name: 'sluice_request_log_partitions_total',
      help: 'Request-log partitions created or dropped by this instance, by action.',
      labelNames: ['action'],
      registers,
    }),
    setRequestLogSource(source) {
      logSource = source;
    },
    logBuffered: new Gauge({
      name: 'sluice_request_log_buffered_rows',
      help: 'Request-log rows in memory waiting to be written.',
      registers,
      collect() {
        this.set(logSource?.().buffered ?? 0);
      },
    }),
    logSpillBytes: new Gauge({
      name: 'sluice_request_log_spill_bytes',
      help: 'Bytes of request-log rows waiting in the spill directory for the database.',
      registers,
      collect() {
        this.set(logSource?.().spillBytes ?? 0);
      },
    }),
    logHealthy: new Gauge({
      name: 'sluice_request_log_database_up',
      help: '1 while request-log writes succeed, 0 after a failed write until the next one succeeds (no request log: 1).',
      registers,
      collect() {
        this.set(logSource === undefined || logSource().healthy ? 1 : 0);
      },
    }),
    queueWait: new Histogram({
      name: 'sluice_queue_wait_seconds',
      help: 'Time requests waited for a slot, by model (started requests, waits of 0 included).',
      labelNames: ['model'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    queueRefusals: new Counter({
      name: 'sluice_queue_refusals_total',
      help: 'Requests the admission queue refused or dropped, by model and reason (full, tenant_full, deadline, timeout, client_gone).',
      labelNames: ['model', 'reason'],
      registers,
    }),
    eventLoopUtilization: new Gauge({
      name: 'sluice_event_loop_utilization',
      help: 'Share of the last load sample the event loop was busy (0 to 1).',
      registers,
    }),
    inFlight: new Gauge({
      name: 'sluice_requests_in_flight',
      help: 'Requests being handled now.',
      registers,
    }),
    streamsTruncated: new Counter({
      name: 'sluice_streams_truncated_total',
      help: 'Streams that broke after bytes reached the client and were ended with an SSE error event.',
      labelNames: ['deployment', 'code'],
      registers,
    }),
    configReloads: new Counter({
      name: 'sluice_config_reloads_total',
      help: 'Config reload attempts by result (applied, rejected).',
      labelNames: ['result'],
      registers,
    }),
    connectionsRefused: new Counter({
      name: 'sluice_connections_refused_total',
      help: 'Connections refused on accept because their client address held server.maxConnectionsPerAddress already.',
      registers,
    }),
    clientErrors: new Counter({
      name: 'sluice_client_errors_total',
      help: 'Connections closed by the HTTP parser, by error code (request_timeout, request_header_too_large, request_too_large, invalid_request).',
      labelNames: ['code'],
      registers,
    }),
    authFailures: new Counter({
      name: 'sluice_auth_failures_total',
      help: 'Failed authentications (missing or wrong key, or a loopback-only key from elsewhere) by kind (tenant, admin).',
      labelNames: ['kind'],
      registers,
    }),
    breakerState: new Gauge({
      name: 'sluice_breaker_state',
      help: 'Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.',
      labelNames: ['deployment'],
      registers,
    }),
    retries: new Counter({
      name: 'sluice_retries_total',
      help: 'Upstream attempts after the first, by the deployment that received them.',
      labelNames: ['deployment'],
      registers,
    }),
    retryBudgetExhausted: new Counter({
      name: 'sluice_retry_budget_exhausted_total',
      help: 'Retries not made because the deployment had no retry budget left.',
      labelNames: ['deployment'],
      registers,
    }),
    attemptFailures: new Counter({
      name: 'sluice_attempt_failures_total',
      help: 'Failed upstream attempts by deployment and failure class (permanent, rate_limited, overloaded, transient, final).',
      labelNames: ['deployment', 'class'],
      registers,
    }),
  };
}

/**
 * Children of a labelled metric, cached by their label values: prom-client hashes the label
 * object on every inc()/observe(), which showed in per-request profiles. Label values are
 * bounded (see the module comment), so the cache is too.
 */
export class LabelledChildren<C> {
  readonly #make: (values: string[]) => C;
  readonly #cache = new Map<string, C>();

  constructor(make: (values: string[]) => C) {
    this.#make = make;
  }

  get(...values: string[]): C {
    const key = values.join('\u0000');
    let child = this.#cache.get(key);
    if (child === undefined) {
      child = this.#make(values);
      this.#cache.set(key, child);
    }
    return child;
  }
}

export interface TenantLabelSettings {
  readonly maxTenantLabels: number;
  readonly tenantLabels?: readonly string[];
}

/** Shared by every tenant past the bound; not a valid tenant name, so it never mixes with one. */
export const OTHER_TENANT = '_other';

/**
 * Bounds the tenant label of the token and cost counters: three series per tenant and model would
 * reach 300,000 for 2,000 tenants x 50 models. With an allow-list exactly its tenants keep their
 * name; without, the first `maxTenantLabels` tenants this instance reports do (a counter cannot be
 * moved once it exists, so "top N" would need the rest aggregated from the start anyway). Per-tenant
 * cost for every tenant lives in the request log and /admin/usage. A reload that lowers the bound
 * keeps the names already given (their series exist); it binds new tenants.
 */
export class TenantLabels {
  #settings: TenantLabelSettings | undefined;
  #allow: ReadonlySet<string> | undefined;
  readonly #named = new Set<string>();

  label(settings: TenantLabelSettings, tenant: string): string {
    // One config object per reload: rebuilt only when it changes, not per request.
    if (settings !== this.#settings) {
      this.#settings = settings;
      this.#allow = settings.tenantLabels && new Set(settings.tenantLabels);
    }
    if (this.#allow) return this.#allow.has(tenant) ? tenant : OTHER_TENANT;
    if (this.#named.has(tenant)) return tenant;
    if (this.#named.size < settings.maxTenantLabels) {
      this.#named.add(tenant);
      return tenant;
    }
    return OTHER_TENANT;
  }
}
