-- The request log: one row per request that reached a tenant, written in batches by the log
-- writer (src/requestlog/writer.ts). Range-partitioned by created_at; the partitions themselves
-- (and the optional default partition) are created ahead of need by src/requestlog/maintenance.ts,
-- which also sets their autovacuum settings (storage parameters cannot be set on the parent).
CREATE TABLE request_log (
  created_at    timestamptz      NOT NULL,
  request_id    text             NOT NULL,
  tenant        text             NOT NULL,
  route         text             NOT NULL,
  model         text,
  deployment    text,
  provider      text,
  region        text,
  status        smallint         NOT NULL,
  error_code    text,
  attempts      smallint         NOT NULL DEFAULT 0,
  fallback      text,
  queue_wait_ms real,
  ttft_ms       real,
  total_ms      real             NOT NULL,
  tokens_in     bigint,
  tokens_out    bigint,
  cost_usd      double precision,
  trace_id      text,
  streamed      boolean          NOT NULL DEFAULT false,
  truncated     boolean          NOT NULL DEFAULT false,
  -- Index 1 of 2. Makes a retried or replayed batch a no-op (INSERT ... ON CONFLICT DO NOTHING
  -- needs a unique index, and on a partitioned table it must contain the partition key), and
  -- serves GET /admin/requests without a tenant: newest first over a time range, paged by the
  -- keyset (created_at, request_id), read backwards.
  PRIMARY KEY (created_at, request_id)
) PARTITION BY RANGE (created_at);

-- Index 2 of 2. GET /admin/requests?tenant= and GET /admin/usage?tenant=: one tenant's rows in a
-- time range. Model and status filters are applied to the rows these two indexes find; each
-- extra index would cost every insert, for queries that are rare and already bounded by time.
CREATE INDEX request_log_tenant_created ON request_log (tenant, created_at);
