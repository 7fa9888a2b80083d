/**
 * The request log on both databases it runs on, real Postgres and embedded PGlite, with the same
 * SQL: migrations, partitions ahead, rows in the right partition, the default partition's rows
 * moved out, retention by DETACH + DROP (no dead tuples, parent analysed), the maintenance lock,
 * the writer (a 50,000-row burst, idempotent replays), and the read API through the gateway.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import type { Db } from '../../src/requestlog/db.ts';
import { runMaintenance } from '../../src/requestlog/maintenance.ts';
import { LOCK_KEYS, migrate } from '../../src/requestlog/migrate.ts';
import { INSERT_SQL, insertParam, serializeRow } from '../../src/requestlog/row.ts';
import { baseConfig, chatBody, startHarness, TENANT_KEY, waitFor } from '../helpers/harness.ts';
import { BACKENDS, cleanups, closeSharedPglite, count, openTestLog, row } from '../helpers/request-log.ts';

const DAY = 86_400_000;
// biome-ignore lint/suspicious/noExplicitAny: JSON bodies of the admin API, checked field by field
type Body = any;
const NOW = Date.UTC(2026, 10, 29, 10, 30); // 2026-11-29T10:30Z
const ADMIN = 'sk-admin-request-log-test';
const settings = (overrides: Partial<Parameters<typeof runMaintenance>[1]> = {}) => ({
  partitionInterval: 'day' as const,
  partitionsAhead: 3,
  retentionDays: 30,
  defaultPartition: true,
  lockTimeoutMs: 2_000,
  ...overrides,
});

async function children(db: Db): Promise<string[]> {
  const rows = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'request_log'::regclass ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

async function insert(db: Db, rows: ReturnType<typeof row>[]): Promise<void> {
  await db.query(INSERT_SQL, [insertParam(rows.map(serializeRow))]);
}

after(() => closeSharedPglite());

for (const backend of BACKENDS) {
  describe(`request log on ${backend.name}`, { concurrency: false }, () => {
    test('migrations apply once, and again is a no-op', async (t) => {
      const defer = cleanups(t);
      const opened = await backend.open(t);
      if (!opened) return;
      defer(() => opened.drop());
      assert.deepEqual(await migrate(opened.db), [1]);
      assert.deepEqual(await migrate(opened.db), []);
      const [m] = await opened.db.query<{ n: number }>('SELECT count(*)::int AS n FROM sluice_migrations');
      assert.equal(m!.n, 1);
    });

    test('partitions are created ahead, with autovacuum settings, and rows land in theirs', async (t) => {
      const defer = cleanups(t);
      const opened = await backend.open(t);
      if (!opened) return;
      defer(() => opened.drop());
      const { db } = opened;
      await migrate(db);
      const report = await runMaintenance(db, settings(), NOW);
      assert.equal(report.ran, true);
      assert.deepEqual(report.created, [
        'request_log_p20261129',
        'request_log_p20261130',
        'request_log_p20261201',
        'request_log_p20261202',
      ]);
      assert.deepEqual(await children(db), [...report.created, 'request_log_default'].sort());
      // A second run finds nothing to do.
      assert.deepEqual((await runMaintenance(db, settings(), NOW)).created, []);

      const [opts] = await db.query<{ reloptions: string[] }>(
        `SELECT reloptions FROM pg_class WHERE relname = 'request_log_p20261130'`,
      );
      assert.ok(opts!.reloptions.includes('autovacuum_vacuum_scale_factor=0.02'), String(opts!.reloptions));

      await insert(db, [
        row({ requestId: 'a', createdAtMs: NOW }),
        row({ requestId: 'b', createdAtMs: NOW + DAY }),
        row({ requestId: 'c', createdAtMs: Date.UTC(2026, 11, 2, 23, 59, 59, 999) }),
        row({ requestId: 'd', createdAtMs: NOW + 10 * DAY }), // no partition yet: the default one
      ]);
      const placed = await db.query<{ id: string; part: string }>(
        'SELECT request_id AS id, tableoid::regclass::text AS part FROM request_log ORDER BY 1',
      );
      assert.deepEqual(
        placed.map((r) => `${r.id}:${r.part}`),
        [
          'a:request_log_p20261129',
          'b:request_log_p20261130',
          'c:request_log_p20261202',
          'd:request_log_default',
        ],
      );

      // Ten days on, the partition for 'd' is created and the row moved into it.
      const later = await runMaintenance(db, settings({ retentionDays: 365 }), NOW + 10 * DAY);
      assert.equal(later.rescuedRows, 1);
      const [d] = await db.query<{ part: string }>(
        `SELECT tableoid::regclass::text AS part FROM request_log WHERE request_id = 'd'`,
      );
      assert.equal(d!.part, 'request_log_p20261209');
      assert.equal(await count(db), 4);
    });

    test('retention detaches and drops old partitions, analyses the parent, leaves no dead tuples', async (t) => {
      const defer = cleanups(t);
      const opened = await backend.open(t);
      if (!opened) return;
      defer(() => opened.drop());
      const { db } = opened;
      await migrate(db);
      // Forty days ago the log started; one row a day since.
      for (let day = 40; day >= 0; day -= 5) {
        await runMaintenance(db, settings({ retentionDays: 3650, partitionsAhead: 0 }), NOW - day * DAY);
      }
      const rows = [];
      for (let day = 40; day >= 0; day -= 5) rows.push(row({ createdAtMs: NOW - day * DAY }));
      await insert(db, rows);
      assert.equal(await count(db), 9);
      const before = await children(db);

      const report = await runMaintenance(db, settings({ retentionDays: 30, partitionsAhead: 0 }), NOW);
      assert.deepEqual(report.dropped, ['request_log_p20261020', 'request_log_p20261025']);
      assert.equal(report.concurrentDetach, false); // a default partition exists
      const after = await children(db);
      assert.deepEqual(
        after,
        before.filter((name) => !report.dropped.includes(name)),
      );
      // Gone from the catalog, not just detached.
      const [left] = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_class WHERE relname = ANY($1::text[])`,
        [report.dropped],
      );
      assert.equal(left!.n, 0);
      assert.equal(await count(db), 7);
      // The parent has statistics of its own (stainherit), which only an ANALYZE of it writes.
      const [stats] = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_statistic WHERE starelid = 'request_log'::regclass AND stainherit`,
      );
      assert.ok(stats!.n > 0, 'ANALYZE of the parent');
      // Retention deleted nothing: no partition has a dead tuple.
      await waitFor(() => true);
      const dead = await db.query<{ relname: string; n_dead_tup: number }>(
        `SELECT relname, n_dead_tup::int AS n_dead_tup FROM pg_stat_user_tables WHERE relname LIKE 'request_log%'`,
      );
      assert.deepEqual(
        dead.filter((r) => r.n_dead_tup > 0),
        [],
      );
      assert.ok(!dead.some((r) => report.dropped.includes(r.relname)));
    });

    // PGlite has one connection: nothing to detach concurrently with, and no CONCURRENTLY.
    if (backend.name === 'postgres')
      test('without a default partition, retention detaches CONCURRENTLY', async (t) => {
        const defer = cleanups(t);
        const opened = await backend.open(t);
        if (!opened) return;
        defer(() => opened.drop());
        const { db } = opened;
        await migrate(db);
        const noDefault = settings({ defaultPartition: false, partitionsAhead: 0, retentionDays: 3650 });
        await runMaintenance(db, noDefault, NOW - 40 * DAY);
        await runMaintenance(db, noDefault, NOW);
        await insert(db, [row({ createdAtMs: NOW - 40 * DAY }), row({ createdAtMs: NOW })]);
        const report = await runMaintenance(db, { ...noDefault, retentionDays: 30 }, NOW);
        assert.equal(report.concurrentDetach, true);
        assert.deepEqual(report.dropped, ['request_log_p20261020']);
        assert.deepEqual(await children(db), ['request_log_p20261129']);
        assert.equal(await count(db), 1);
      });

    test('one instance maintains at a time: a held lock means skip', async (t) => {
      const defer = cleanups(t);
      const opened = await backend.open(t);
      if (!opened) return;
      defer(() => opened.drop());
      const { db } = opened;
      await migrate(db);
      if (backend.name === 'postgres') {
        // Another instance holds the lock in an open transaction.
        let release!: () => void;
        const released = new Promise<void>((r) => {
          release = r;
        });
        let held!: () => void;
        const isHeld = new Promise<void>((r) => {
          held = r;
        });
        const holder = db.transaction(async (tx) => {
          await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEYS.maintenance.toString()]);
          held();
          await released;
        });
        await isHeld;
        const skipped = await runMaintenance(db, settings(), NOW);
        assert.equal(skipped.ran, false);
        assert.deepEqual(skipped.created, []);
        release();
        await holder;
      }
      // Several at once: every partition is created exactly once and none fails.
      const reports = await Promise.all([1, 2, 3, 4].map(() => runMaintenance(db, settings(), NOW)));
      const created = reports.flatMap((r) => r.created).sort();
      assert.equal(created.length, 4);
      assert.equal(new Set(created).size, 4);
    });

    test('a burst of 50,000 requests through the gateway: every row arrives; a batch written twice is a no-op', async (t) => {
      const defer = cleanups(t);
      const opened = await backend.open(t);
      if (!opened) return;
      defer(() => opened.drop());
      const { requestLog } = await openTestLog(defer, { flushIntervalMs: 50 }, { db: opened.db });
      const h = await startHarness({ requestLog });
      defer(() => h.close());
      const agent = new Agent({ connections: 64 });
      defer(() => agent.close());
      const total = 50_000;
      let sent = 0;
      let ok = 0;
      const body = chatBody();
      const worker = async () => {
        while (sent < total) {
          sent++;
          const r = await request(`${h.baseURL}/chat/completions`, {
            method: 'POST',
            headers: h.headers(),
            body,
            dispatcher: agent,
          });
          await r.body.dump();
          if (r.statusCode === 200) ok++;
        }
      };
      await Promise.all(Array.from({ length: 64 }, worker));
      assert.equal(ok, total);
      await waitFor(
        () => {
          const s = requestLog.writer.stats();
          return s.buffered === 0 && s.writing === 0 && !s.spillPending;
        },
        60_000,
        'rows written',
        20,
      );
      await requestLog.writer.idle();
      assert.equal(requestLog.writer.stats().dropped, 0);
      const [c] = await opened.db.query<{ n: number; d: number }>(
        'SELECT count(*)::int AS n, count(DISTINCT request_id)::int AS d FROM request_log',
      );
      assert.deepEqual(c, { n: total, d: total });

      // The same rows again (a retried or replayed batch): nothing changes.
      const again = await opened.db.query<{ request_id: string; ms: number }>(
        `SELECT request_id, floor(extract(epoch FROM created_at) * 1000)::float8 AS ms FROM request_log LIMIT 500`,
      );
      await insert(
        opened.db,
        again.map((r) => row({ requestId: r.request_id, createdAtMs: r.ms })),
      );
      assert.equal(await count(opened.db), total);
    });

    test('the read API: filters, keyset pages, usage, and 400 for bad parameters', async (t) => {
      const defer = cleanups(t);
      const opened = await backend.open(t);
      if (!opened) return;
      defer(() => opened.drop());
      const { requestLog } = await openTestLog(defer, { flushIntervalMs: 20 }, { db: opened.db });
      const h = await startHarness({
        requestLog,
        config: (fake) => ({
          ...baseConfig(fake),
          admin: { keys: [hashKey(ADMIN)] },
          models: {
            'test-model': {
              deployments: [{ provider: 'fake', pricing: { inputPerMillion: 2, outputPerMillion: 8 } }],
            },
            'other-model': { deployments: [{ provider: 'fake' }] },
          },
        }),
      });
      defer(() => h.close());

      const send = (body: string, headers: Record<string, string> = {}) =>
        fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers: h.headers(headers), body }).then(
          async (r) => {
            await r.arrayBuffer();
            return r.status;
          },
        );
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      for (let i = 0; i < 7; i++) assert.equal(await send(chatBody(), { traceparent }), 200);
      for (let i = 0; i < 3; i++) assert.equal(await send(chatBody({ model: 'other-model' })), 200);
      assert.equal(await send(chatBody({ stream: true })), 200);
      assert.equal(await send(chatBody({ model: 'no-such-model' })), 404);
      await waitFor(
        () => requestLog.writer.stats().buffered === 0 && requestLog.writer.stats().writing === 0,
        5_000,
      );
      await requestLog.writer.idle();
      assert.equal(await count(opened.db), 12);

      const admin = async (path: string) => {
        const r = await fetch(`${h.url}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
        return { status: r.status, body: (await r.json()) as Body };
      };
      // The row of a JSON request, field by field.
      const one = await admin('/admin/requests?model=test-model&limit=1&status=200');
      assert.equal(one.status, 200);
      const first = one.body.data[0];
      assert.equal(first.tenant, 'acme');
      assert.equal(first.model, 'test-model');
      assert.equal(first.provider, 'fake');
      assert.equal(first.region, 'local');
      assert.equal(first.deployment, 'fake/test-model@local');
      assert.equal(first.attempts, 1);
      assert.ok(first.totalMs > 0);
      assert.ok(first.tokensIn > 0 && first.tokensOut > 0);
      assert.ok(Math.abs(first.costUsd - (first.tokensIn * 2 + first.tokensOut * 8) / 1e6) < 1e-12);
      assert.equal(typeof first.queueWaitMs, 'number');
      // The newest test-model row is the stream.
      assert.equal(first.streamed, true);
      assert.ok(first.ttftMs > 0 && first.ttftMs <= first.totalMs);
      assert.equal(one.body.has_more, true);

      // Walk all test-model pages, 3 at a time: every row once, newest first.
      const seen: string[] = [];
      let cursor: string | null = null;
      let last = Number.POSITIVE_INFINITY;
      do {
        const page: { body: Body } = await admin(
          `/admin/requests?model=test-model&limit=3${cursor ? `&cursor=${cursor}` : ''}`,
        );
        for (const r of page.body.data) {
          seen.push(r.requestId);
          assert.ok(Date.parse(r.createdAt) <= last);
          last = Date.parse(r.createdAt);
        }
        cursor = page.body.next_cursor;
      } while (cursor);
      assert.equal(seen.length, 8);
      assert.equal(new Set(seen).size, 8);

      const traced = await admin('/admin/requests?model=test-model&status=2xx&limit=1000');
      assert.equal(
        traced.body.data.filter((r: Body) => r.traceId === '4bf92f3577b34da6a3ce929d0e0e4736').length,
        7,
      );
      const errors = await admin('/admin/requests?status=error');
      assert.equal(errors.body.data.length, 1);
      assert.equal(errors.body.data[0].errorCode, 'model_not_found');
      assert.equal((await admin('/admin/requests?tenant=batchco')).body.data.length, 0);
      assert.equal((await admin('/admin/requests?model=other-model')).body.data.length, 3);
      const future = new Date(Date.now() + DAY).toISOString();
      assert.equal((await admin(`/admin/requests?since=${future}`)).body.data.length, 0);
      assert.equal((await admin(`/admin/requests?until=${future}`)).body.data.length, 12);

      const usage = await admin('/admin/usage?granularity=day');
      assert.equal(usage.status, 200);
      const byModel = Object.fromEntries(usage.body.data.map((u: Body) => [u.model, u]));
      assert.equal(byModel['test-model'].requests, 8);
      assert.equal(byModel['test-model'].errors, 0);
      assert.ok(byModel['test-model'].costUsd > 0);
      assert.equal(byModel['other-model'].requests, 3);
      assert.equal(byModel['other-model'].costUsd, 0);
      // A request for a model that does not exist has no model.
      assert.equal(byModel.null.errors, 1);
      const hourly = await admin('/admin/usage?tenant=acme&model=other-model');
      assert.equal(hourly.body.data.length, 1);
      assert.equal(hourly.body.granularity, 'hour');

      for (const [path, param] of [
        ['/admin/requests?limit=0', 'limit'],
        ['/admin/requests?limit=abc', 'limit'],
        ['/admin/requests?limit=1001', 'limit'],
        ['/admin/requests?status=teapot', 'status'],
        ['/admin/requests?since=yesterday', 'since'],
        ['/admin/requests?since=2026-11-29T10:00:00Z&until=2026-11-29T09:00:00Z', 'since'],
        ['/admin/requests?cursor=not-a-cursor', 'cursor'],
        ['/admin/requests?tenant=a&tenant=b', 'tenant'],
        ['/admin/requests?colour=red', 'colour'],
        ['/admin/usage?granularity=minute', 'granularity'],
        ['/admin/usage?granularity=hour&since=2026-01-01T00:00:00Z&until=2026-11-01T00:00:00Z', 'since'],
      ] as const) {
        const r = await admin(path);
        assert.equal(r.status, 400, path);
        assert.equal(r.body.error.code, 'invalid_request', path);
        assert.equal(r.body.error.param, param, path);
      }
      // Admin only.
      const anon = await fetch(`${h.url}/admin/requests`, {
        headers: { authorization: `Bearer ${TENANT_KEY}` },
      });
      assert.equal(anon.status, 401);
      await anon.arrayBuffer();
    });
  });
}
