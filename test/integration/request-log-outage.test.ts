/**
 * The request log when Postgres goes away: a private server stopped in the middle of a burst of
 * requests and started again. Requests keep being answered; rows wait in the buffer, then in the
 * spill directory, and every one arrives exactly once. Rows spilled at shutdown are replayed by
 * the next start, a torn line skipped.
 */
import assert from 'node:assert/strict';
import { appendFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { hashKey } from '../../src/auth/keys.ts';
import { PgDb } from '../../src/requestlog/pg-db.ts';
import { RequestLog } from '../../src/requestlog/request-log.ts';
import type { createMetrics } from '../../src/telemetry/metrics.ts';
import { startBlackhole } from '../helpers/blackhole.ts';
import { baseConfig, chatBody, startHarness, waitFor } from '../helpers/harness.ts';
import { hasPostgresBinaries, type PrivatePostgres, startPostgresServer } from '../helpers/postgres.ts';
import { cleanups, logConfig, memoryLogger, openTestLog, row, tempDir } from '../helpers/request-log.ts';

async function privatePostgres(
  t: import('node:test').TestContext,
  defer: (fn: () => unknown) => void,
): Promise<PrivatePostgres | undefined> {
  if (!hasPostgresBinaries()) {
    if (process.env.CI === 'true') throw new Error('CI: the PostgreSQL server binaries are required');
    t.skip('PostgreSQL server binaries not installed');
    return undefined;
  }
  const server = await startPostgresServer();
  defer(() => server.destroy());
  return server;
}

async function countRows(url: string): Promise<{ rows: number; distinct: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query(
      'SELECT count(*)::int AS rows, count(DISTINCT request_id)::int AS distinct FROM request_log',
    );
    return { rows: r.rows[0].rows, distinct: r.rows[0].distinct };
  } finally {
    await client.end();
  }
}

async function metric(metrics: ReturnType<typeof createMetrics>, outcome: string): Promise<number> {
  const m = await metrics.logRows.get();
  return m.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

test('Postgres stopped mid-burst and restarted: requests unaffected, every row once', async (t) => {
  const defer = cleanups(t);
  const server = await privatePostgres(t, defer);
  if (!server) return;
  const { requestLog, lines, metrics, spillDir } = await openTestLog(defer, {
    url: server.url,
    batchRows: 200,
    maxBufferedRows: 1_000,
    flushIntervalMs: 50,
    writeTimeoutMs: 2_000,
  });
  const h = await startHarness({ requestLog });
  defer(() => h.close());

  const total = 6_000;
  const statuses = new Map<number, number>();
  let sent = 0;
  let stopped: Promise<void> | undefined;
  let restarted: Promise<void> | undefined;
  const worker = async () => {
    while (sent < total) {
      const i = sent++;
      if (i === 1_500) stopped = server.stop('immediate');
      if (i === 4_500)
        restarted = (async () => {
          await stopped;
          await server.start();
        })();
      const r = await fetch(`${h.baseURL}/chat/completions`, {
        method: 'POST',
        headers: h.headers(),
        body: chatBody(),
      });
      await r.arrayBuffer();
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  await restarted;
  assert.deepEqual([...statuses], [[200, total]], 'every request answered while the database was away');

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
  assert.deepEqual(await countRows(server.url), { rows: total, distinct: total });
  assert.ok((await metric(metrics, 'spilled')) > 0, 'the buffer overflowed to the spill directory');
  assert.equal(await metric(metrics, 'replayed'), await metric(metrics, 'spilled'));
  assert.equal(requestLog.writer.stats().dropped, 0);
  assert.deepEqual(
    (await readdir(spillDir)).filter((f) => f.endsWith('.ndjson')),
    [],
    'replayed files are deleted',
  );
  assert.ok(lines.some((l) => String(l.msg).includes('database write failed')));
  assert.ok(lines.some((l) => String(l.msg).includes('database writes resumed')));
  // The password-free URL only: no secret in the log.
  assert.ok(!JSON.stringify(lines).includes('password'));
});

test('rows spilled at shutdown are replayed by the next start; a torn line is skipped', async (t) => {
  const defer = cleanups(t);
  const server = await privatePostgres(t, defer);
  if (!server) return;
  const spillDir = await tempDir(defer, 'spill');
  const { log, lines } = memoryLogger();
  const config = logConfig({ url: server.url, spillDir, flushIntervalMs: 20, writeTimeoutMs: 1_000 });
  const first = await RequestLog.open(config, { log });
  await server.stop('immediate');
  const base = Date.now();
  for (let i = 0; i < 300; i++) first.record(row({ requestId: `shutdown-${i}`, createdAtMs: base + i }));
  await first.close(300);
  const files = (await readdir(spillDir)).filter((f) => f.endsWith('.ndjson'));
  assert.equal(files.length, 1);
  const text = await readFile(join(spillDir, files[0]!), 'utf8');
  assert.equal(text.trim().split('\n').length, 300);
  // A crash in the middle of a write leaves half a line.
  await appendFile(join(spillDir, files[0]!), '{"requestId":"torn","createdAt');

  await server.start();
  const second = await RequestLog.open(config, { log });
  defer(() => second.close(2_000));
  await waitFor(() => !second.writer.stats().spillPending, 20_000, 'replay', 50);
  await second.writer.idle();
  assert.deepEqual(await countRows(server.url), { rows: 300, distinct: 300 });
  const replayed = lines.find((l) => l.msg === 'request log: spilled rows replayed');
  assert.deepEqual([replayed?.rows, replayed?.badLines], [300, 1]);

  // And a second gateway on the same spill directory is refused, not interleaved.
  await assert.rejects(
    RequestLog.open(config, { log, db: new PgDb({ url: server.url, poolSize: 1, connectTimeoutMs: 1_000 }) }),
    /in use by process/,
  );
});

test('shutdown while writes hang: their rows and the buffer go to the spill file', async (t) => {
  const defer = cleanups(t);
  const hole = await startBlackhole();
  defer(() => hole.close());
  const spillDir = await tempDir(defer, 'spill');
  const { log } = memoryLogger();
  const requestLog = await RequestLog.open(
    logConfig({
      url: `postgres://postgres@127.0.0.1:${hole.port}/nowhere`,
      spillDir,
      batchRows: 10,
      flushIntervalMs: 10,
      writeTimeoutMs: 3_000,
    }),
    { log },
  );
  for (let i = 0; i < 35; i++) requestLog.record(row({ requestId: `hang-${i}` }));
  await waitFor(() => requestLog.writer.stats().writing === 2, 2_000, 'two writes in flight');
  assert.equal(requestLog.writer.stats().buffered, 15);
  await requestLog.close(200);
  const lines: string[] = [];
  for (const f of (await readdir(spillDir)).filter((f) => f.endsWith('.ndjson'))) {
    lines.push(...(await readFile(join(spillDir, f), 'utf8')).trim().split('\n'));
  }
  const ids = lines.map((l) => (JSON.parse(l) as { requestId: string }).requestId);
  assert.equal(new Set(ids).size, 35);
});

test('a row the database refuses is dropped alone, counted; its batch is written', async (t) => {
  const defer = cleanups(t);
  const server = await privatePostgres(t, defer);
  if (!server) return;
  const { requestLog, lines, metrics } = await openTestLog(defer, { url: server.url, flushIntervalMs: 20 });
  for (let i = 0; i < 20; i++) {
    // status is a smallint: 70000 is out of its range (SQLSTATE 22003), whatever is retried.
    requestLog.record(row({ requestId: `poison-${i}`, status: i === 13 ? 70_000 : 200 }));
  }
  await waitFor(() => requestLog.writer.stats().dropped === 1, 10_000, 'the bad row dropped');
  await waitFor(
    () => requestLog.writer.stats().buffered === 0 && requestLog.writer.stats().writing === 0,
    5_000,
  );
  assert.deepEqual(await countRows(server.url), { rows: 19, distinct: 19 });
  assert.equal(await metric(metrics, 'dropped_rejected'), 1);
  assert.equal(await metric(metrics, 'written'), 19);
  assert.ok(
    lines.some((l) => l.msg === 'request log: database refused a row; dropped' && l.code === '22003'),
  );
  assert.equal(requestLog.writer.stats().healthy, true);
});

test('with the database down, /admin reads answer 503 request_log_unavailable, quickly', async (t) => {
  const defer = cleanups(t);
  const server = await privatePostgres(t, defer);
  if (!server) return;
  const { requestLog } = await openTestLog(defer, {
    url: server.url,
    readTimeoutMs: 1_000,
    writeTimeoutMs: 1_000,
  });
  const admin = 'sk-admin-outage-test';
  const h = await startHarness({
    requestLog,
    config: (fake) => ({ ...baseConfig(fake), admin: { keys: [hashKey(admin)] } }),
  });
  defer(() => h.close());
  await server.stop('immediate');
  for (const path of ['/admin/requests', '/admin/usage']) {
    const started = performance.now();
    const r = await fetch(`${h.url}${path}`, { headers: { authorization: `Bearer ${admin}` } });
    const body = (await r.json()) as { error: { code: string; type: string } };
    assert.equal(r.status, 503, path);
    assert.equal(body.error.code, 'request_log_unavailable');
    assert.equal(r.headers.get('retry-after'), '5');
    assert.ok(performance.now() - started < 3_000, `${path} answered in time`);
  }
  // Requests themselves are still answered.
  const ok = await fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: h.headers(),
    body: chatBody(),
  });
  assert.equal(ok.status, 200);
  await ok.arrayBuffer();
});
