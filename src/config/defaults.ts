/**
 * Every default Sluice applies, in one place. The schema, the docs and the embedded config all
 * read from here, so a default can never drift between them.
 */
export const DEFAULTS = Object.freeze({
  server: Object.freeze({
    host: '127.0.0.1',
    port: 8080,
    /** Largest request body accepted; larger bodies get 413. */
    bodyLimitBytes: 4 * 1024 * 1024,
    /** How long in-flight requests (streams included) may run after SIGTERM before the process exits. */
    drainTimeoutMs: 30_000,
    /** Largest non-streaming upstream response Sluice will hold; larger answers fail with 502. */
    maxResponseBytes: 32 * 1024 * 1024,
    /** Deepest JSON nesting accepted in a request body; deeper bodies get 400 before they are parsed. */
    maxJsonDepth: 128,
    /**
     * From a connection's (or a keep-alive request's) first byte to the end of the headers. A
     * client sends its headers in one go; ten seconds is generous on any link.
     */
    headersTimeoutMs: 10_000,
    /**
     * From the same start to the last byte of the body. It stops once the request is in, so it never
     * cuts a request waiting on its provider or a long stream; 30 s moves 4 MiB at ~140 KB/s.
     */
    requestTimeoutMs: 30_000,
    /** Idle keep-alive: longer than load balancers' usual 60 s, so they close first (no reuse race). */
    keepAliveTimeoutMs: 65_000,
    /** Open connections per client address; 0 = no cap. Trusted proxies are not capped. */
    maxConnectionsPerAddress: 1_000,
    /** Peers whose X-Forwarded-For is believed (addresses or CIDRs); none by default. */
    trustedProxies: Object.freeze([] as string[]),
    /**
     * Failed authentications per client address: a bucket of `burst` that refills `perMinute`; an
     * empty bucket refuses credentials with 429. `maxAddresses` bounds the memory it takes.
     */
    authFailures: Object.freeze({ burst: 20, perMinute: 60, maxAddresses: 100_000 }),
  }),
  logging: Object.freeze({ level: 'info' as const }),
  provider: Object.freeze({
    region: 'default',
    /** Keep-alive connections per upstream origin. */
    connections: 64,
  }),
  /**
   * The timeout ladder: connect <= first token <= chunk gap <= total, all in milliseconds.
   * Connect is generous enough for a cold TLS handshake across regions; first token absorbs
   * provider queueing and reasoning warm-up; the chunk gap allows tool-call pauses; total is the
   * product's hard backstop.
   */
  timeouts: Object.freeze({
    connectTimeoutMs: 5_000,
    firstTokenTimeoutMs: 60_000,
    chunkGapTimeoutMs: 60_000,
    totalTimeoutMs: 600_000,
  }),
  deployment: Object.freeze({ weight: 1 }),
  retry: Object.freeze({
    /** First attempt included. */
    maxAttempts: 4,
    /** Full-jitter backoff: the nth retry waits uniform [0, min(maxDelayMs, baseDelayMs * 2^(n-1))]. */
    baseDelayMs: 100,
    maxDelayMs: 2_000,
    /** With no untried deployment left, retry one that already failed (retry-policy.ts). */
    sameDeployment: true,
    /** Retries may add at most this share of a deployment's recent first attempts... */
    budgetRatio: 0.2,
    /** ...plus this many per second, so a quiet deployment can still retry. */
    budgetMinPerSecond: 5,
    budgetWindowMs: 10_000,
  }),
  breaker: Object.freeze({
    /** Open when more than this percentage of calls in the window failed... */
    errorThresholdPercent: 50,
    /** ...and the window holds at least this many calls. */
    volumeThreshold: 20,
    windowMs: 10_000,
    /** Open for this long, then let one probe through (half-open). */
    cooldownMs: 30_000,
    /** 429s mean "slow down", not "broken": they count as failures only when this is true. */
    countRateLimits: false,
  }),
  tenant: Object.freeze({ priority: 'standard' as const }),
  queue: Object.freeze({
    enabled: true,
    /** Requests waiting across all models on this instance. */
    maxQueuedTotal: 10_000,
    /** A model's maxQueued, when not set: this many waiting requests per slot (maxConcurrent). */
    queuedPerSlot: 8,
    /** Every agingMs a request has waited lifts it one priority class. */
    agingMs: 2_000,
    /** The longest a request waits for a slot, whatever its own deadline. */
    maxWaitMs: 30_000,
    /** Waiting requests one tenant may have per model; 0 = no bound of its own. */
    maxQueuedPerTenant: 0,
    /** Share of a model's maxQueued each priority may fill; the rest is kept for higher ones. */
    shares: Object.freeze({ batch: 0.5, standard: 0.8, critical: 1 }),
  }),
  limits: Object.freeze({
    redis: Object.freeze({
      /** Every key Sluice writes starts with this, so several gateways can share one Redis. */
      keyPrefix: 'sluice',
      /** A limiter command slower than this counts as a Redis failure (the request never waits longer). */
      commandTimeoutMs: 100,
      /** Redis unreachable: 'open' = enforce each instance's share locally; 'closed' = refuse with 503. */
      failureMode: 'open' as const,
      /** Redis breaker: after this many failed commands in a row, stop trying Redis... */
      failuresToOpen: 3,
      /** ...for this long, then probe it again. */
      cooldownMs: 2_000,
    }),
    /** A concurrency lease not renewed for this long is gone (its instance died). */
    leaseTtlMs: 30_000,
    tokenEstimate: Object.freeze({
      /** Prompt tokens are estimated as characters / charsPerToken (rounded up). */
      charsPerToken: 4,
      /** Completion tokens assumed when the request sets no max_tokens / max_completion_tokens. */
      defaultMaxTokens: 1_024,
    }),
    worker: Object.freeze({
      enabled: true,
      /** Overloaded when the p99 event-loop delay over one sample passes this... */
      maxEventLoopDelayMs: 200,
      /**
       * ...or the event loop was busy more than this share of the sample. 1 = off: a gateway at
       * full throughput is busy all the time without being late, so by default only delay counts.
       */
      maxUtilization: 1,
      sampleIntervalMs: 500,
      /** Consecutive overloaded samples before one more priority class is shed. */
      escalateAfterSamples: 3,
      /** Consecutive calm samples before one class fewer is shed. */
      recoverAfterSamples: 6,
      /** Calm = both signals under this share of their threshold; in between, nothing changes. */
      recoverRatio: 0.7,
      retryAfterSeconds: 2,
    }),
    /** Share of a model's fleet-wide maxInFlight each priority may use; the rest is kept for higher ones. */
    fleetShares: Object.freeze({ batch: 0.5, standard: 0.8, critical: 1 }),
  }),
  requestLog: Object.freeze({
    enabled: true,
    /** Embedded PGlite's directory, used when neither requestLog.url nor DATABASE_URL is set. */
    dataDir: './data/pglite',
    /** Postgres connections this instance opens (writes, reads and maintenance together). */
    poolSize: 4,
    /** Apply pending migrations at start (or run `sluice migrate`). */
    migrate: true,
    partitionInterval: 'day' as const,
    /** Partitions kept created ahead of the current one. */
    partitionsAhead: 3,
    /** Partitions whose whole range is older than this are detached and dropped. */
    retentionDays: 30,
    /** A catch-all partition for rows outside every partition (Postgres then refuses DETACH CONCURRENTLY). */
    defaultPartition: true,
    /** How often partitions are created ahead and retention runs (each instance; one does the work). */
    maintenanceIntervalMs: 3_600_000,
    /** DDL waits at most this long for its lock, so it never stalls writers behind it. */
    lockTimeoutMs: 2_000,
    /** Rows per INSERT. */
    batchRows: 1_000,
    /** A partial batch is written after this long. */
    flushIntervalMs: 1_000,
    /** Rows held in memory; past this, the oldest batch goes to the spill file. */
    maxBufferedRows: 20_000,
    /** INSERTs in flight at once. */
    maxConcurrentWrites: 2,
    /** A write slower than this fails (its rows are kept and written again: inserts are idempotent). */
    writeTimeoutMs: 10_000,
    /** Admin reads (/admin/requests, /admin/usage) slower than this fail with 503. */
    readTimeoutMs: 5_000,
    /** Rows the database could not take wait here (one directory per instance) until it is back. */
    spillDir: './data/spill',
    /** Bound of the spill directory; past it, rows are dropped and counted. */
    maxSpillBytes: 1024 * 1024 * 1024,
  }),
  tracing: Object.freeze({
    serviceName: 'sluice',
    /** Share of new traces (no sampled parent) recorded; a parent's decision is followed. */
    sampleRatio: 1,
    exportTimeoutMs: 10_000,
    /** Spans held for export; past it new spans are dropped (never the requests). */
    maxQueuedSpans: 2_048,
  }),
  metrics: Object.freeze({
    /**
     * Tenants with their own `tenant` label on the token and cost counters (first come, per
     * instance); the rest share `tenant="_other"`. 101 values x 50 models x 3 series is ~15,000
     * series at most, where one label per tenant could reach 300,000 on a large fleet.
     */
    maxTenantLabels: 100,
  }),
  /** How long after the last file-system event the config file is re-read. */
  reloadDebounceMs: 200,
});

export const PRIORITIES = ['critical', 'standard', 'batch'] as const;
export type Priority = (typeof PRIORITIES)[number];
