/**
 * The request log's deployment shapes. Through a real PgBouncer in transaction pooling mode, with fewer server
 * connections (2) than Sluice's pool (8): no session state and no named prepared statements may
 * be relied on. Migrations, maintenance and its lock, batched writes, and the read API all go
 * through it. And with a read replica URL, reads go there.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { runMaintenance } from '../../src/requestlog/maintenance.ts';
import { LOCK_KEYS, migrate } from '../../src/requestlog/migrate.ts';
import { PgDb } from '../../src/requestlog/pg-db.ts';
import { parseRequestsQuery, parseUsageQuery } from '../../src/requestlog/queries.ts';
import { INSERT_SQL, insertParam, serializeRow } from '../../src/requestlog/row.ts';
import { waitFor } from '../helpers/harness.ts';
import {
  createTestDatabase,
  requirePgBouncer,
  requirePostgres,
  startPgBouncer,
} from '../helpers/postgres.ts';
import { cleanups, logConfig, openTestLog, row } from '../helpers/request-log.ts';

test('through PgBouncer (transaction mode, pool of 2): schema, writes, lock, reads', async (t) => {
  const defer = cleanups(t);
  if (!(await requirePostgres(t)) || !(await requirePgBouncer(t))) return;
  const database = await createTestDatabase();
  defer(() => database.drop());
  const bouncer = await startPgBouncer({ upstreamUrl: database.url, poolSize: 2 });
  defer(() => bouncer.stop());
  const { requestLog, config } = await openTestLog(defer, {
    url: bouncer.url,
    poolSize: 8,
    maxConcurrentWrites: 4,
    batchRows: 250,
    flushIntervalMs: 20,
  });
  assert.equal(requestLog.stats().schemaReady, true, 'migrations and maintenance ran through PgBouncer');

  const base = Date.now();
  const total = 10_000;
  for (let i = 0; i < total; i++) {
    requestLog.record(
      row({
        requestId: `bouncer-${i}`,
        createdAtMs: base + i,
        tenant: i % 2 ? 'acme' : 'globex',
        status: i % 10 ? 200 : 503,
      }),
    );
    if (i % 250 === 249) await new Promise((r) => setImmediate(r));
  }
  await waitFor(
    () => {
      const s = requestLog.writer.stats();
      return s.buffered === 0 && s.writing === 0 && !s.spillPending;
    },
    30_000,
    'rows written',
    20,
  );
  await requestLog.writer.idle();

  // Counted over a direct connection, not through the bouncer.
  const direct = new pg.Client({ connectionString: database.url });
  direct.on('error', () => {}); // the database is dropped at the end
  await direct.connect();
  defer(() => direct.end());
  const counted = await direct.query(
    'SELECT count(*)::int AS n, count(DISTINCT request_id)::int AS d FROM request_log',
  );
  assert.deepEqual(counted.rows[0], { n: total, d: total });
  assert.equal(requestLog.writer.stats().dropped, 0);

  // The maintenance lock holds across PgBouncer's multiplexing: held by a direct session's
  // transaction, an instance going through the bouncer skips.
  await direct.query('BEGIN');
  await direct.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEYS.maintenance.toString()]);
  const skipped = await runMaintenance(requestLog.db, config);
  assert.equal(skipped.ran, false);
  await direct.query('COMMIT');
  assert.equal((await runMaintenance(requestLog.db, config)).ran, true);

  // Reads: filters and keyset pages.
  let cursor: string | undefined;
  let seen = 0;
  do {
    const page = await requestLog.listRequests(
      parseRequestsQuery({ tenant: 'acme', status: '5xx', limit: '100', ...(cursor ? { cursor } : {}) }),
    );
    for (const r of page.data) {
      assert.equal(r.tenant, 'acme');
      assert.equal(r.status, 503);
    }
    seen += page.data.length;
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  // Odd i are acme; i % 10 === 0 are 503: none is both.
  assert.equal(seen, 0);
  const globex503 = await requestLog.listRequests(
    parseRequestsQuery({ tenant: 'globex', status: '503', limit: '1000' }),
  );
  assert.equal(globex503.data.length, 1_000);
  assert.equal(globex503.has_more, false);
});

test('with requestLog.replicaUrl, reads go to the replica and writes to the primary', async (t) => {
  const defer = cleanups(t);
  if (!(await requirePostgres(t))) return;
  const primary = await createTestDatabase();
  defer(() => primary.drop());
  const replica = await createTestDatabase();
  defer(() => replica.drop());
  // A stand-in replica: its own database, a row only it has (a real replica would lag a little).
  const replicaDb = new PgDb({ url: replica.url, poolSize: 1, connectTimeoutMs: 5_000 });
  defer(() => replicaDb.close());
  await migrate(replicaDb);
  await runMaintenance(replicaDb, logConfig());
  await replicaDb.query(INSERT_SQL, [insertParam([serializeRow(row({ requestId: 'only-on-replica' }))])]);

  const { requestLog } = await openTestLog(defer, {
    url: primary.url,
    replicaUrl: replica.url,
    flushIntervalMs: 20,
  });
  for (let i = 0; i < 10; i++) requestLog.record(row({ requestId: `primary-${i}` }));
  await waitFor(
    () => requestLog.writer.stats().buffered === 0 && requestLog.writer.stats().writing === 0,
    10_000,
  );
  await requestLog.writer.idle();
  const [written] = await requestLog.db.query<{ n: number }>('SELECT count(*)::int AS n FROM request_log');
  assert.equal(written!.n, 10);
  const page = await requestLog.listRequests(parseRequestsQuery({}));
  assert.deepEqual(
    page.data.map((r) => r.requestId),
    ['only-on-replica'],
  );
  const usage = await requestLog.usage(parseUsageQuery({}, Date.now() + 60_000));
  assert.equal(
    usage.data.reduce((n, u) => n + (u.requests as number), 0),
    1,
  );
});
