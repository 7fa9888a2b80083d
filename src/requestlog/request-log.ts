/**
 * The request log as the rest of Sluice sees it: record() a row, read pages and usage, run
 * maintenance, close. Built from `requestLog` config: Postgres when requestLog.url or DATABASE_URL
 * is set, embedded PGlite under requestLog.dataDir otherwise. A database that is down at start
 * does not stop the gateway: the schema is applied as soon as it answers, and rows wait meanwhile.
 */
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { RequestLogConfig } from '../config/schema.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { Db } from './db.ts';
import { lockDir } from './dir-lock.ts';
import { type MaintenanceReport, runMaintenance } from './maintenance.ts';
import { migrate } from './migrate.ts';
import { PgDb } from './pg-db.ts';
import { PgliteDb } from './pglite-db.ts';
import {
  encodeCursor,
  MAX_USAGE_ROWS,
  type RequestsFilter,
  requestsSql,
  type UsageFilter,
  usageSql,
} from './queries.ts';
import type { RequestLogRow } from './row.ts';
import { SpillDir, type SpillFs } from './spill.ts';
import { type DropReason, RequestLogWriter, type WriterStats } from './writer.ts';

export interface RequestLogDeps {
  log: Logger;
  metrics?: Metrics | undefined;
  /** Environment for DATABASE_URL. */
  env?: Record<string, string | undefined>;
  /** Clock for partition maintenance (tests). */
  now?: () => number;
  /** A database already open (tests, embedding); closed with the request log. */
  db?: Db;
  /** The spill directory's file operations (tests inject disk faults); node:fs by default. */
  spillFs?: SpillFs;
}

export interface RequestPage {
  object: 'list';
  data: Record<string, unknown>[];
  has_more: boolean;
  next_cursor: string | null;
}

export interface UsagePage {
  object: 'list';
  granularity: 'hour' | 'day';
  since: string;
  until: string;
  data: Record<string, unknown>[];
  truncated: boolean;
}

const START_WAIT_MS = 5_000;
const PREPARE_RETRY_MS = 5_000;

export class RequestLog {
  readonly db: Db;
  readonly readDb: Db;
  readonly writer: RequestLogWriter;
  readonly #config: RequestLogConfig;
  readonly #deps: RequestLogDeps;
  readonly #spill: SpillDir;
  readonly #unlockData: (() => Promise<void>) | undefined;
  #prepared = false;
  #preparing: Promise<boolean> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(
    config: RequestLogConfig,
    deps: RequestLogDeps,
    db: Db,
    readDb: Db,
    spill: SpillDir,
    unlockData: (() => Promise<void>) | undefined,
  ) {
    this.#config = config;
    this.#deps = deps;
    this.db = db;
    this.readDb = readDb;
    this.#spill = spill;
    this.#unlockData = unlockData;
    const m = deps.metrics;
    this.writer = new RequestLogWriter(db, spill, config, deps.log, {
      written(rows, seconds) {
        m?.logRows.inc({ outcome: 'written' }, rows);
        m?.logWrites.inc({ outcome: 'ok' });
        m?.logWriteDuration.observe(seconds);
      },
      writeFailed(_rows, seconds) {
        m?.logWrites.inc({ outcome: 'error' });
        m?.logWriteDuration.observe(seconds);
      },
      spilled: (rows) => m?.logRows.inc({ outcome: 'spilled' }, rows),
      replayed(rows, seconds) {
        m?.logRows.inc({ outcome: 'replayed' }, rows);
        m?.logRows.inc({ outcome: 'written' }, rows);
        m?.logWrites.inc({ outcome: 'ok' });
        m?.logWriteDuration.observe(seconds);
      },
      dropped: (rows, reason: DropReason) => m?.logRows.inc({ outcome: `dropped_${reason}` }, rows),
    });
    m?.setRequestLogSource(() => this.writer.stats());
  }

  /** Opens the databases and the spill directory and starts writing; the schema may come later. */
  static async open(config: RequestLogConfig, deps: RequestLogDeps): Promise<RequestLog> {
    const replicaUrl = nonEmpty(config.replicaUrl);
    const onError = (err: Error) => deps.log.warn({ err: err.message }, 'request log: idle connection lost');
    const { db, unlock: unlockData } =
      deps.db === undefined
        ? await openDatabase(config, deps.env ?? {}, onError)
        : { db: deps.db, unlock: undefined };
    const readDb =
      replicaUrl !== undefined && db.kind === 'postgres'
        ? new PgDb({
            url: replicaUrl,
            poolSize: Math.max(1, Math.ceil(config.poolSize / 2)),
            connectTimeoutMs: config.readTimeoutMs,
            applicationName: 'sluice-reads',
            onError,
          })
        : db;
    if (replicaUrl !== undefined && db.kind === 'pglite') {
      deps.log.warn('request log: requestLog.replicaUrl is ignored with embedded PGlite');
    }
    const spill = new SpillDir(config.spillDir, config.maxSpillBytes, deps.spillFs);
    try {
      await spill.open();
    } catch (err) {
      if (readDb !== db) await readDb.close().catch(() => {});
      await db.close().catch(() => {});
      await unlockData?.();
      throw err;
    }
    const requestLog = new RequestLog(config, deps, db, readDb, spill, unlockData);
    deps.log.info(
      { database: db.target, replica: readDb === db ? undefined : readDb.target, spillDir: config.spillDir },
      'request log: opened',
    );
    await requestLog.#startup();
    return requestLog;
  }

  record(row: RequestLogRow): void {
    this.writer.record(row);
  }

  stats(): WriterStats & { schemaReady: boolean } {
    return { ...this.writer.stats(), schemaReady: this.#prepared };
  }

  async #startup(): Promise<void> {
    this.writer.start();
    const ready = await Promise.race([this.#prepare(), sleep(START_WAIT_MS).then(() => false)]);
    if (!ready) {
      this.#deps.log.warn(
        { database: this.db.target },
        'request log: database not ready at start; rows are kept until it is',
      );
    }
    this.#schedule();
  }

  /** Next maintenance run; every few seconds until the schema is in, then every maintenanceIntervalMs. */
  #schedule(): void {
    if (this.#closed) return;
    const delay = this.#prepared ? this.#config.maintenanceIntervalMs : PREPARE_RETRY_MS;
    this.#timer = setTimeout(async () => {
      if (this.#prepared) await this.maintain().catch(() => {});
      else await this.#prepare();
      this.#schedule();
    }, delay);
    this.#timer.unref();
  }

  /** Migrations (when requestLog.migrate) and a first maintenance run; true once both are done. */
  #prepare(): Promise<boolean> {
    this.#preparing ??= (async () => {
      try {
        if (this.#config.migrate) {
          const applied = await migrate(this.db);
          if (applied.length > 0) this.#deps.log.info({ applied }, 'request log: migrations applied');
        }
        await this.maintain();
        this.#prepared = true;
        return true;
      } catch (err) {
        this.#deps.log.warn({ err: (err as Error).message }, 'request log: schema not ready; will retry');
        return false;
      } finally {
        this.#preparing = undefined;
      }
    })();
    return this.#preparing;
  }

  /** Creates partitions ahead and retires expired ones (one instance at a time). */
  async maintain(): Promise<MaintenanceReport> {
    const m = this.#deps.metrics;
    try {
      const report = await runMaintenance(this.db, this.#config, (this.#deps.now ?? Date.now)());
      m?.logMaintenance.inc({ outcome: report.ran ? 'ran' : 'skipped' });
      if (report.created.length > 0) m?.logPartitions.inc({ action: 'created' }, report.created.length);
      if (report.dropped.length > 0) m?.logPartitions.inc({ action: 'dropped' }, report.dropped.length);
      if (report.created.length > 0 || report.dropped.length > 0 || report.rescuedRows > 0) {
        this.#deps.log.info(report, 'request log: partitions maintained');
      }
      return report;
    } catch (err) {
      m?.logMaintenance.inc({ outcome: 'failed' });
      this.#deps.log.warn({ err: (err as Error).message }, 'request log: partition maintenance failed');
      throw err;
    }
  }

  async listRequests(filter: RequestsFilter): Promise<RequestPage> {
    const { sql, params } = requestsSql(filter);
    const rows = await this.readDb.queryWithin<Record<string, unknown>>(
      this.#config.readTimeoutMs,
      sql,
      params,
    );
    const more = rows.length > filter.limit;
    const page = more ? rows.slice(0, filter.limit) : rows;
    const last = page.at(-1);
    return {
      object: 'list',
      data: page.map(toApiRow),
      has_more: more,
      next_cursor: more && last ? encodeCursor(last.created_ms as number, last.request_id as string) : null,
    };
  }

  async usage(filter: UsageFilter): Promise<UsagePage> {
    const { sql, params } = usageSql(filter);
    const rows = await this.readDb.queryWithin<Record<string, unknown>>(
      this.#config.readTimeoutMs,
      sql,
      params,
    );
    const truncated = rows.length > MAX_USAGE_ROWS;
    return {
      object: 'list',
      granularity: filter.granularity,
      since: new Date(filter.sinceMs).toISOString(),
      until: new Date(filter.untilMs).toISOString(),
      data: (truncated ? rows.slice(0, MAX_USAGE_ROWS) : rows).map((r) => ({
        bucket: new Date(r.bucket_ms as number).toISOString(),
        tenant: r.tenant,
        model: r.model,
        requests: r.requests,
        errors: r.errors,
        tokensIn: r.tokens_in,
        tokensOut: r.tokens_out,
        costUsd: round(r.cost_usd as number, 9),
      })),
      truncated,
    };
  }

  /** Writes or spills what is buffered (up to timeoutMs), then closes everything. */
  async close(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.writer.close(timeoutMs);
    await this.#spill.close();
    if (this.readDb !== this.db) await this.readDb.close().catch(() => {});
    await this.db.close().catch(() => {});
    await this.#unlockData?.();
  }
}

/**
 * The request log's primary database: Postgres at requestLog.url or DATABASE_URL, else embedded
 * PGlite in requestLog.dataDir (locked to this process: PGlite is one process's database).
 */
export async function openDatabase(
  config: RequestLogConfig,
  env: Record<string, string | undefined>,
  onError?: (err: Error) => void,
): Promise<{ db: Db; unlock: (() => Promise<void>) | undefined }> {
  const url = nonEmpty(config.url) ?? nonEmpty(env.DATABASE_URL);
  if (url !== undefined) {
    return {
      db: new PgDb({ url, poolSize: config.poolSize, connectTimeoutMs: config.writeTimeoutMs, onError }),
      unlock: undefined,
    };
  }
  await mkdir(config.dataDir, { recursive: true });
  const unlock = await lockDir(config.dataDir);
  try {
    return { db: await PgliteDb.open(config.dataDir), unlock };
  } catch (err) {
    await unlock();
    throw err;
  }
}

function toApiRow(r: Record<string, unknown>): Record<string, unknown> {
  return {
    requestId: r.request_id,
    createdAt: new Date(r.created_ms as number).toISOString(),
    tenant: r.tenant,
    route: r.route,
    model: r.model,
    deployment: r.deployment,
    provider: r.provider,
    region: r.region,
    status: r.status,
    errorCode: r.error_code,
    attempts: r.attempts,
    fallback: r.fallback,
    queueWaitMs: r.queue_wait_ms,
    ttftMs: r.ttft_ms,
    totalMs: r.total_ms,
    tokensIn: r.tokens_in,
    tokensOut: r.tokens_out,
    costUsd: r.cost_usd,
    traceId: r.trace_id,
    streamed: r.streamed,
    truncated: r.truncated,
  };
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
const nonEmpty = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
  });
