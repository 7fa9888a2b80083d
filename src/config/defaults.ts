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
  /** How long after the last file-system event the config file is re-read. */
  reloadDebounceMs: 200,
});

export const PRIORITIES = ['critical', 'standard', 'batch'] as const;
export type Priority = (typeof PRIORITIES)[number];
