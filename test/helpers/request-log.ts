/**
 * Request-log test pieces: the two databases the same suite runs on (a fresh database on the real
 * Postgres, embedded PGlite in memory), a settings object with small bounds, and rows.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type Logger, pino } from 'pino';
import { validateConfig } from '../../src/config/load.ts';
import type { RequestLogConfig } from '../../src/config/schema.ts';
import type { Db } from '../../src/requestlog/db.ts';
import { PgDb } from '../../src/requestlog/pg-db.ts';
import { PgliteDb } from '../../src/requestlog/pglite-db.ts';
import { RequestLog } from '../../src/requestlog/request-log.ts';
import type { RequestLogRow } from '../../src/requestlog/row.ts';
import type { SpillFile, SpillFs } from '../../src/requestlog/spill.ts';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics.ts';
import { createTestDatabase, requirePostgres } from './postgres.ts';

export interface Backend {
  readonly name: 'postgres' | 'pglite';
  /** A new, empty database (and its cleanup); undefined when skipped. */
  open(t: TestContext): Promise<{ db: Db; url: string | undefined; drop(): Promise<void> } | undefined>;
}

let shared: Promise<PgliteDb> | undefined;

/** Closes the shared PGlite (call from the test file's after()). */
export async function closeSharedPglite(): Promise<void> {
  const db = await shared;
  shared = undefined;
  await db?.close();
}

export const BACKENDS: readonly Backend[] = [
  {
    name: 'postgres',
    async open(t) {
      if (!(await requirePostgres(t))) return undefined;
      const created = await createTestDatabase();
      const db = new PgDb({ url: created.url, poolSize: 4, connectTimeoutMs: 5_000 });
      return {
        db,
        url: created.url,
        async drop() {
          await db.close().catch(() => {});
          await created.drop();
        },
      };
    },
  },
  {
    name: 'pglite',
    async open() {
      // One PGlite per test file (it takes seconds to create), emptied before each test.
      shared ??= PgliteDb.open(undefined);
      const real = await shared;
      await real.exec('DROP TABLE IF EXISTS request_log CASCADE; DROP TABLE IF EXISTS sluice_migrations;');
      const db: Db = {
        kind: real.kind,
        target: real.target,
        query: (sql, params) => real.query(sql, params),
        exec: (sql) => real.exec(sql),
        queryWithin: (ms, sql, params) => real.queryWithin(ms, sql, params),
        transaction: (fn) => real.transaction(fn),
        close: async () => {},
      };
      return { db, url: undefined, drop: async () => {} };
    },
  },
];

/** requestLog settings as config load makes them, with overrides. */
export function logConfig(overrides: Record<string, unknown> = {}): RequestLogConfig {
  const config = validateConfig(
    {
      providers: { p: { kind: 'fake' } },
      models: { m: { deployments: [{ provider: 'p' }] } },
      tenants: { t: { keys: [`sha256:${'0'.repeat(64)}`] } },
      requestLog: overrides,
    },
    {},
  );
  return config.requestLog;
}

export async function tempDir(defer: (fn: () => unknown) => void, name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `sluice-${name}-`));
  defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A logger that keeps its lines, for assertions. */
export function memoryLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: 'debug' },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { log, lines };
}

let seq = 0;
export function row(overrides: Partial<RequestLogRow> = {}): RequestLogRow {
  seq++;
  return {
    requestId: `req-${process.pid}-${seq}`,
    createdAtMs: Date.now(),
    tenant: 'acme',
    route: '/v1/chat/completions',
    model: 'test-model',
    deployment: 'fake/upstream@local',
    provider: 'fake',
    region: 'local',
    status: 200,
    errorCode: null,
    attempts: 1,
    fallback: null,
    queueWaitMs: 0,
    ttftMs: null,
    totalMs: 12.5,
    tokensIn: 10,
    tokensOut: 20,
    costUsd: 0.00003,
    traceId: '0af7651916cd43dd8448eb211c80319c',
    streamed: false,
    truncated: false,
    ...overrides,
  };
}

export async function count(db: Db, where = 'true'): Promise<number> {
  const [r] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM request_log WHERE ${where}`);
  return r!.n;
}

/** Cleanups that run last-registered-first, as resources nest (t.after runs in registration order). */
export function cleanups(t: TestContext): (fn: () => unknown) => void {
  const stack: Array<() => unknown> = [];
  t.after(async () => {
    while (stack.length > 0) await stack.pop()!();
  });
  return (fn) => {
    stack.push(fn);
  };
}

/**
 * A request log with a spill directory, logger and metrics of its own, on `deps.db` or on what
 * `settings` say (url, or embedded), closed by `defer`.
 */
export async function openTestLog(
  defer: (fn: () => unknown) => void,
  settings: Record<string, unknown> = {},
  deps: { db?: Db; spillFs?: SpillFs } = {},
): Promise<{
  requestLog: RequestLog;
  config: RequestLogConfig;
  lines: Array<Record<string, unknown>>;
  metrics: Metrics;
  spillDir: string;
}> {
  const spillDir = (settings.spillDir as string | undefined) ?? (await tempDir(defer, 'spill'));
  const { log, lines } = memoryLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const config = logConfig({ ...settings, spillDir });
  const requestLog = await RequestLog.open(config, { log, metrics, ...deps });
  defer(() => requestLog.close(5_000));
  return { requestLog, config, lines, metrics, spillDir };
}

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

/**
 * node:fs, except that the write after `budget` bytes is short and the next one fails with
 * ENOSPC, as a full disk does; `truncateFails` makes the clean-up fail too.
 */
export function fullDiskAfter(budget: { bytes: number }, truncateFails = false): SpillFs {
  return {
    async open(path, flags) {
      const real = await open(path, flags);
      const file: SpillFile = {
        async write(buffer, offset, length) {
          if (budget.bytes <= 0) throw enospc();
          const n = Math.min(length, budget.bytes);
          budget.bytes -= n;
          return real.write(buffer, offset, n);
        },
        async truncate(length) {
          if (truncateFails) throw enospc();
          await real.truncate(length);
        },
        stat: () => real.stat(),
        close: () => real.close(),
      };
      return file;
    },
  };
}
