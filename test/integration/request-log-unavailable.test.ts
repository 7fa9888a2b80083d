/**
 * A database that refuses connections is unavailable, not a bad row: with `ALLOW_CONNECTIONS false`
 * (SQLSTATE 55000 at connect) the writer keeps every row (buffer, spill), says `database_up 0`, and
 * writes each row exactly once when connections are allowed again. A missing database (3D000) and
 * an unknown role (28000) are connect-time failures too; only the content of a row the database
 * reached and refused (22xxx, 23xxx) is dropped.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { DbUnavailableError, isTransient, sqlState } from '../../src/requestlog/db.ts';
import { PgDb } from '../../src/requestlog/pg-db.ts';
import type { createMetrics } from '../../src/telemetry/metrics.ts';
import { waitFor } from '../helpers/harness.ts';
import { createTestDatabase, PG_URL, requirePostgres } from '../helpers/postgres.ts';
import { cleanups, openTestLog, row } from '../helpers/request-log.ts';

async function admin(sql: string, params: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(sql, params);
  } finally {
    await client.end();
  }
}

async function metric(metrics: ReturnType<typeof createMetrics>, outcome: string): Promise<number> {
  const m = await metrics.logRows.get();
  return m.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

async function databaseUp(metrics: ReturnType<typeof createMetrics>): Promise<number> {
  return (await metrics.logHealthy.get()).values[0]?.value ?? -1;
}

test('ALLOW_CONNECTIONS false: rows kept and spilled, database_up 0, each row written once after', async (t) => {
  if (!(await requirePostgres(t))) return;
  const defer = cleanups(t);
  const created = await createTestDatabase();
  defer(() => created.drop());
  const { requestLog, lines, metrics } = await openTestLog(defer, {
    url: created.url,
    batchRows: 50,
    maxBufferedRows: 200,
    flushIntervalMs: 20,
    writeTimeoutMs: 2_000,
  });
  await waitFor(() => requestLog.stats().schemaReady, 10_000, 'the schema');
  const base = Date.now();
  let recorded = 0;
  const record = (n: number) => {
    for (let i = 0; i < n; i++, recorded++)
      requestLog.record(row({ requestId: `allow-${recorded}`, createdAtMs: base + recorded }));
  };
  record(100);
  await waitFor(() => requestLog.writer.stats().buffered === 0 && requestLog.writer.stats().writing === 0);
  await requestLog.writer.idle();

  // Refuse new connections and end the ones the pool holds: every write now needs a connect.
  await admin(`ALTER DATABASE ${created.name} ALLOW_CONNECTIONS false`);
  defer(() => admin(`ALTER DATABASE ${created.name} ALLOW_CONNECTIONS true`));
  await admin(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [created.name],
  );
  const deadline = Date.now() + 10_000;
  while ((await metric(metrics, 'spilled')) === 0 && Date.now() < deadline) {
    record(20);
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.ok((await metric(metrics, 'spilled')) > 0, 'rows went to the spill directory');
  assert.equal(await databaseUp(metrics), 0, 'sluice_request_log_database_up is 0');
  assert.equal(await metric(metrics, 'dropped_rejected'), 0, 'no row counted as refused');
  assert.equal(requestLog.writer.stats().dropped, 0);
  const failed = lines.find(
    (l) => l.msg === 'request log: database write failed; spilling rows to disk until it is back',
  );
  assert.ok(failed, 'the outage is logged');
  assert.ok(
    lines.some((l) => l.code === '55000'),
    'the SQLSTATE of the refused connection is logged',
  );
  assert.ok(!lines.some((l) => l.msg === 'request log: database refused a row; dropped'));

  await admin(`ALTER DATABASE ${created.name} ALLOW_CONNECTIONS true`);
  await waitFor(
    () => {
      const s = requestLog.writer.stats();
      return s.healthy && s.buffered === 0 && s.writing === 0 && !s.spillPending;
    },
    60_000,
    'rows written and the spill replayed',
    50,
  );
  await requestLog.writer.idle();
  const [counts] = await requestLog.db.query<{ rows: number; distinct: number }>(
    'SELECT count(*)::int AS rows, count(DISTINCT request_id)::int AS distinct FROM request_log',
  );
  assert.deepEqual(counts, { rows: recorded, distinct: recorded });
  assert.equal(await databaseUp(metrics), 1);
  assert.equal(await metric(metrics, 'written'), recorded, 'each row counted written once');
  assert.equal(await metric(metrics, 'dropped_rejected'), 0);
});

test('a missing database (3D000) and an unknown role (28000) are the database being unavailable', async (t) => {
  if (!(await requirePostgres(t))) return;
  const cases: Array<[string, string]> = [];
  const missing = new URL(PG_URL);
  missing.pathname = '/sluice_no_such_database';
  cases.push([missing.toString(), '3D000']);
  const role = new URL(PG_URL);
  role.username = 'sluice_no_such_role';
  cases.push([role.toString(), '28000']);
  for (const [url, state] of cases) {
    const db = new PgDb({ url, poolSize: 1, connectTimeoutMs: 2_000 });
    try {
      const err = await db.queryWithin(2_000, 'SELECT 1').then(
        () => assert.fail(`${url} answered`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof DbUnavailableError, `${state}: ${String(err)}`);
      assert.equal(sqlState(err), state);
      assert.ok(isTransient(err), `${state} at connect keeps the rows`);
      // query() and exec() (migrations, maintenance) classify the same way.
      await assert.rejects(db.query('SELECT 1'), DbUnavailableError);
    } finally {
      await db.close();
    }
  }
});

test('only an error about the rows themselves drops them', () => {
  const refused = ['22P02', '22001', '22003', '23502', '23505', '54000'];
  const kept = [
    '08006',
    '28000',
    '28P01',
    '3D000',
    '40001',
    '42P01',
    '53300',
    '55000',
    '57P01',
    '57014',
    'XX000',
  ];
  for (const code of refused) assert.equal(isTransient({ code }), false, code);
  for (const code of kept) assert.equal(isTransient({ code }), true, code);
  // No partition for the row yet: upkeep creates it, the row waits.
  assert.equal(isTransient({ code: '23514' }), true);
  assert.equal(isTransient(new Error('connect ECONNREFUSED 127.0.0.1:5432')), true);
  // Whatever the SQLSTATE, a failure to connect is not about the rows.
  assert.equal(
    isTransient(new DbUnavailableError({ code: '22023', message: 'invalid startup option' })),
    true,
  );
});
