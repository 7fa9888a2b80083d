/**
 * The request log's spill directory when things fail together: the database down and the spill
 * directory unusable, a disk that fills up in the middle of an append, and a process killed while
 * the database is down. Every row recorded ends up counted exactly once, written (directly or
 * replayed) or dropped with a reason, and the database holds exactly the rows counted written.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, rename, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { PgDb } from '../../src/requestlog/pg-db.ts';
import { RequestLog } from '../../src/requestlog/request-log.ts';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics.ts';
import { waitFor } from '../helpers/harness.ts';
import { freePort } from '../helpers/ports.ts';
import {
  createTestDatabase,
  hasPostgresBinaries,
  type PrivatePostgres,
  requirePostgres,
  startPostgresServer,
} from '../helpers/postgres.ts';
import {
  cleanups,
  count,
  fullDiskAfter,
  logConfig,
  openTestLog,
  row,
  tempDir,
} from '../helpers/request-log.ts';

const CHILD = new URL('../helpers/spill-crash-child.ts', import.meta.url).pathname;

let shared: Promise<PrivatePostgres> | undefined;
after(async () => (await shared)?.destroy());

/** A private Postgres the test can stop and start; undefined when skipped. */
async function privatePostgres(t: import('node:test').TestContext): Promise<PrivatePostgres | undefined> {
  if (!hasPostgresBinaries()) {
    if (process.env.CI === 'true') throw new Error('CI: the PostgreSQL server binaries are required');
    t.skip('PostgreSQL server binaries not installed');
    return undefined;
  }
  shared ??= startPostgresServer();
  return shared;
}

async function outcomes(metrics: Metrics): Promise<Record<string, number>> {
  const m = await metrics.logRows.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.outcome), v.value]));
}

const settled = (requestLog: RequestLog) => {
  const s = requestLog.writer.stats();
  return s.healthy && s.buffered === 0 && s.writing === 0 && !s.spillPending;
};

test('database down and the spill directory unusable: rows wait in memory, replay ends, counts exact', async (t) => {
  const defer = cleanups(t);
  const server = await privatePostgres(t);
  if (!server) return;
  const { requestLog, metrics, spillDir, lines } = await openTestLog(defer, {
    url: server.url,
    batchRows: 10,
    maxBufferedRows: 20,
    flushIntervalMs: 20,
    writeTimeoutMs: 1_000,
  });
  await waitFor(() => requestLog.stats().schemaReady, 20_000, 'schema');
  await server.stop('immediate');
  // Root ignores permissions: a regular file where the directory was makes every append fail
  // before its file exists (ENOTDIR).
  const away = `${spillDir}.away`;
  defer(() => rm(away, { recursive: true, force: true }));
  await rename(spillDir, away);
  await writeFile(spillDir, 'not a directory');

  const db = new PgDb({ url: server.url, poolSize: 1, connectTimeoutMs: 5_000 });
  defer(() => db.close());
  requestLog.record(row({ requestId: 'ro-0' }));
  await waitFor(() => !requestLog.writer.stats().healthy, 10_000, 'the write failure noticed');
  // Past maxBufferedRows, the oldest batches are tried on disk, fail and are dropped.
  for (let i = 1; i <= 30; i++) requestLog.record(row({ requestId: `ro-${i}` }));
  await waitFor(() => requestLog.writer.stats().dropped > 0, 10_000, 'rows dropped');

  await rm(spillDir);
  await rename(away, spillDir);
  await server.start();
  // The replay used to fail with ENOENT every second on the name of the file never created.
  await waitFor(() => settled(requestLog), 30_000, 'every row written or dropped, nothing pending', 50);
  await requestLog.writer.idle();

  const counted = await outcomes(metrics);
  const dropped = requestLog.writer.stats().dropped;
  assert.equal(counted.dropped_spill_error, dropped);
  const written = counted.written ?? 0;
  assert.equal(await count(db, "request_id LIKE 'ro-%'"), written);
  assert.equal(written + dropped, 31, 'every row counted once');
  assert.ok(written > 0 && dropped > 0, `some written (${written}), some dropped (${dropped})`);
  assert.equal(counted.spilled ?? 0, counted.replayed ?? 0);
  assert.ok(
    lines.some((l) => l.msg === 'request log: the spill directory refused rows; keeping them in memory'),
  );
  assert.deepEqual(
    (await readdir(spillDir)).filter((f) => f.endsWith('.ndjson')),
    [],
    'no spill file left behind',
  );
});

test('a disk that fills in the middle of an append: the rows that landed are replayed and counted so', async (t) => {
  const defer = cleanups(t);
  if (!(await requirePostgres(t))) return;
  const spillDir = await tempDir(defer, 'spill');
  const rows = Array.from({ length: 300 }, (_, i) => row({ requestId: `full-${i}` }));
  const serialised = rows.map((r) => `${JSON.stringify(r)}\n`);
  // The disk has room for 137 rows and part of the 138th.
  const budget = { bytes: serialised.slice(0, 137).join('').length + 50 };

  // First run: the database is unreachable, so at shutdown the rows go to the spill file.
  const firstMetrics = createMetrics({ defaultMetrics: false });
  const first = await RequestLog.open(
    logConfig({
      url: `postgres://postgres@127.0.0.1:${await freePort()}/none`,
      spillDir,
      writeTimeoutMs: 1_000,
    }),
    { log: pino({ level: 'silent' }), metrics: firstMetrics, spillFs: fullDiskAfter(budget) },
  );
  for (const r of rows) first.record(r);
  await first.close(2_000);
  const before = await outcomes(firstMetrics);
  assert.equal(before.spilled, 137, 'the rows that reached the file');
  assert.equal(before.dropped_spill_error, 163, 'only the rest are dropped');
  assert.equal(before.written ?? 0, 0);

  // Next start, the database is there: exactly those 137 are replayed, and counted as such.
  const created = await createTestDatabase();
  defer(() => created.drop());
  const { requestLog, metrics } = await openTestLog(defer, {
    url: created.url,
    spillDir,
    flushIntervalMs: 20,
  });
  await waitFor(() => settled(requestLog), 20_000, 'replay', 50);
  await requestLog.writer.idle();
  const after = await outcomes(metrics);
  assert.equal(after.replayed, 137);
  assert.equal(after.written, 137);
  assert.equal(await count(requestLog.db, "request_id LIKE 'full-%'"), 137);
});

test('killed while the database is down: the next start replays every row recorded up to the last flush', async (t) => {
  const defer = cleanups(t);
  if (!(await requirePostgres(t))) return;
  const spillDir = await tempDir(defer, 'spill');
  const total = 400;
  const child = spawn(
    process.execPath,
    [CHILD, spillDir, `postgres://postgres@127.0.0.1:${await freePort()}/none`, String(total)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = once(child, 'exit');
  defer(() => child.kill('SIGKILL'));
  const [line] = (await Promise.race([
    once(createInterface({ input: child.stdout! }), 'line'),
    exited.then(() => {
      throw new Error('the child exited early');
    }),
  ])) as [string];
  const stats = JSON.parse(line) as { buffered: number; spilling: number; healthy: boolean };
  assert.equal(stats.healthy, false, 'the child found the database away');
  assert.equal(stats.buffered, 0, 'nothing waits in memory one flush interval later');
  child.kill('SIGKILL'); // no close(), no last flush
  await exited;

  const created = await createTestDatabase();
  defer(() => created.drop());
  // The dead process's lock is taken over; its spill files are replayed.
  const { requestLog, metrics } = await openTestLog(defer, {
    url: created.url,
    spillDir,
    flushIntervalMs: 20,
  });
  await waitFor(() => settled(requestLog), 20_000, 'replay', 50);
  await requestLog.writer.idle();
  assert.equal(await count(requestLog.db, "request_id LIKE 'crash-%'"), total);
  assert.equal((await outcomes(metrics)).replayed, total);
});
