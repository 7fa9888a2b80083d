// Request-log benchmark (`npm run bench` runs it last). Loopback only, bounded in time.
//  1. Write throughput: rows/s sustained into Postgres through the writer with its default
//     settings (batches of 1,000, 2 INSERTs in flight), fed as fast as it drains (the buffer kept
//     under half its bound, so nothing spills) for --seconds after a 2 s warm-up, into a fresh
//     database. Then the same into embedded PGlite. Target: >= 20,000 rows/s into Postgres.
//  2. Latency cost: Sluice as its own process pinned to core 1 (fake provider and a fresh load
//     generator on core 0), request log off and on (Postgres), open loop at --rate for --seconds,
//     alternating, 3 rounds each. Target: the p99 difference within noise, where noise is the
//     spread (max - min) of the p99s of the runs with the log off.
// BENCH_DURATION_S (bench/duration.ts) scales --seconds (10), the 3 rounds of 2 and the 2 s
// warm-ups, keeping 2 rounds so there is a spread to call noise: 3 s, 2 rounds, 1 s warm-ups at
// BENCH_DURATION_S=3.
//
//   node bench/requestlog.ts [--seconds 10] [--rate 500] [--pg postgres://postgres@127.0.0.1:5432/test]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { pino } from 'pino';
import { validateConfig } from '../src/config/load.ts';
import type { RequestLogConfig } from '../src/config/schema.ts';
import type { Db } from '../src/requestlog/db.ts';
import { PgliteDb } from '../src/requestlog/pglite-db.ts';
import { RequestLog } from '../src/requestlog/request-log.ts';
import type { RequestLogRow } from '../src/requestlog/row.ts';
import { createMetrics } from '../src/telemetry/metrics.ts';
import { scaled, scaledRounds, scaledWarmup } from './duration.ts';
import { runPhase } from './phase.ts';
import { freePort, pinSelf, runBench, stop } from './procs.ts';
import { CHAT_BODY, PROVIDER_CORE, PROXY_CORE, sluiceConfig, startFake, withPinnedSluice } from './setup.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: String(scaled(10)) },
    rate: { type: 'string', default: '500' },
    pg: { type: 'string', default: process.env.PG_URL || 'postgres://postgres@127.0.0.1:5432/test' },
  },
});
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const PG_URL = values.pg;
const ROUNDS = Math.max(2, scaledRounds(3));
const WARMUP_S = scaledWarmup(2);
const DB_NAME = `sluice_bench_${process.pid}`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function config(overrides: Record<string, unknown>): RequestLogConfig {
  return validateConfig(
    {
      providers: { p: { kind: 'fake' } },
      models: { m: { deployments: [{ provider: 'p' }] } },
      tenants: { t: { keys: [`sha256:${'0'.repeat(64)}`] } },
      requestLog: overrides,
    },
    {},
  ).requestLog;
}

let seq = 0;
function row(): RequestLogRow {
  seq++;
  return {
    requestId: `bench-${process.pid}-${seq}`,
    createdAtMs: Date.now(),
    tenant: `tenant-${seq % 50}`,
    route: '/v1/chat/completions',
    model: 'gpt-4o-mini',
    deployment: 'openai/gpt-4o-mini@us-east',
    provider: 'openai',
    region: 'us-east',
    status: seq % 100 === 0 ? 503 : 200,
    errorCode: seq % 100 === 0 ? 'upstream_unavailable' : null,
    attempts: 1,
    fallback: null,
    queueWaitMs: 0.12,
    ttftMs: 230.5,
    totalMs: 812.25,
    tokensIn: 420,
    tokensOut: 180,
    costUsd: 0.000171,
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    streamed: true,
    truncated: false,
  };
}

function dbUrl(name: string): string {
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Feeds the writer as fast as it drains for warm-up + SECONDS; rows/s written in the measured part. */
async function throughput(
  name: string,
  settings: Record<string, unknown>,
  db: Db | undefined,
): Promise<{ rowsPerS: number; spilled: number; dropped: number; writeMeanMs: number }> {
  const spillDir = mkdtempSync(join(tmpdir(), 'sluice-bench-spill-'));
  const metrics = createMetrics({ defaultMetrics: false });
  const log = pino({ level: 'warn' }, process.stderr);
  const requestLog = await RequestLog.open(config({ ...settings, spillDir }), {
    log,
    metrics,
    ...(db ? { db } : {}),
  });
  const limit = config(settings).maxBufferedRows / 2;
  const written = async () =>
    (await metrics.logRows.get()).values.find((v) => v.labels.outcome === 'written')?.value ?? 0;
  const start = performance.now();
  let measuredFrom = 0;
  let rowsAtStart = 0;
  const end = start + (WARMUP_S + SECONDS) * 1000;
  while (performance.now() < end) {
    if (measuredFrom === 0 && performance.now() - start >= WARMUP_S * 1000) {
      measuredFrom = performance.now();
      rowsAtStart = await written();
    }
    // A few hundred rows per turn, as requests end in a busy gateway.
    for (let i = 0; i < 500 && requestLog.writer.stats().buffered < limit; i++) requestLog.record(row());
    await new Promise((r) => setImmediate(r));
  }
  const rows = (await written()) - rowsAtStart;
  const seconds = (performance.now() - measuredFrom) / 1000;
  const stats = requestLog.writer.stats();
  const spilled =
    (await metrics.logRows.get()).values.find((v) => v.labels.outcome === 'spilled')?.value ?? 0;
  const durations = await metrics.logWriteDuration.get();
  const count = durations.values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
  const sum = durations.values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
  await requestLog.close(30_000);
  rmSync(spillDir, { recursive: true, force: true });
  process.stderr.write(`[requestlog] ${name}: ${(rows / seconds).toFixed(0)} rows/s\n`);
  return {
    rowsPerS: rows / seconds,
    spilled,
    dropped: stats.dropped,
    writeMeanMs: count ? (sum / count) * 1000 : 0,
  };
}

async function latency(): Promise<{ off: number[][]; on: number[][] }> {
  pinSelf(PROVIDER_CORE);
  const upstream = await startFake(PROVIDER_CORE);
  const tmp = mkdtempSync(join(tmpdir(), 'sluice-bench-requestlog-'));
  const out = { off: [] as number[][], on: [] as number[][] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['off', 'on'] as const) {
        const port = await freePort();
        const file = join(tmp, `${mode}.yaml`);
        let text = sluiceConfig(port, upstream.port).replace(
          'logging: { level: info }',
          'logging: { level: warn }',
        );
        if (mode === 'on') {
          text = text.replace(
            'requestLog: { enabled: false }',
            `requestLog: { url: "${dbUrl(DB_NAME)}", spillDir: "${join(tmp, `spill-${round}`)}" }`,
          );
        }
        writeFileSync(file, text);
        const ol = await withPinnedSluice(
          ['src/main.ts', '--config', file],
          port,
          upstream.proc.pid,
          (target) =>
            runPhase(
              {
                ...target,
                kind: 'openLoop',
                body: CHAT_BODY,
                rate: RATE,
                warmupS: WARMUP_S,
                durationS: SECONDS,
              },
              PROVIDER_CORE,
              (SECONDS + 60) * 1000,
            ),
        );
        out[mode].push([ol.latencyMs.p50, ol.latencyMs.p99, ol.p99MedianSecondMs]);
        process.stderr.write(
          `[requestlog] log ${mode}: p50 ${ol.latencyMs.p50.toFixed(3)} p99 ${ol.latencyMs.p99.toFixed(3)} ms @${RATE}/s\n`,
        );
      }
    }
  } finally {
    await stop(upstream.proc);
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

async function main(): Promise<void> {
  await admin(`CREATE DATABASE ${DB_NAME}`);
  const lines: string[] = [];
  try {
    const postgres = await throughput('postgres', { url: dbUrl(DB_NAME) }, undefined);
    const rowsInDb = await (async () => {
      const client = new pg.Client({ connectionString: dbUrl(DB_NAME) });
      await client.connect();
      const r = await client.query('SELECT count(*)::int AS n FROM request_log');
      await client.end();
      return r.rows[0].n as number;
    })();
    await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${DB_NAME}'`);
    const pglite = await throughput('pglite', {}, await PgliteDb.open(undefined));
    await (async () => {
      const c = new pg.Client({ connectionString: dbUrl(DB_NAME) });
      await c.connect();
      await c.query('TRUNCATE request_log');
      await c.end();
    })();
    const lat = await latency();
    const col = (runs: number[][], i: number) => runs.map((r) => r[i]!);
    const offP99 = col(lat.off, 1);
    const noise = Math.max(...offP99) - Math.min(...offP99);
    const diff = median(col(lat.on, 1)) - median(offP99);
    lines.push(
      '## Request log: write throughput',
      '',
      `Command: \`node bench/requestlog.ts --seconds ${SECONDS} --rate ${RATE}\` · the writer with its defaults (batches of 1,000 rows, 2 INSERTs in flight), fed as fast as it drains for ${SECONDS} s after ${WARMUP_S} s of warm-up; Postgres 127.0.0.1:5432 (unpinned), a fresh database`,
      '',
      '| database | rows/s sustained | mean INSERT ms | spilled | dropped |',
      '|---|---:|---:|---:|---:|',
      `| Postgres | ${postgres.rowsPerS.toFixed(0)} | ${postgres.writeMeanMs.toFixed(1)} | ${postgres.spilled} | ${postgres.dropped} |`,
      `| PGlite (embedded, worker thread) | ${pglite.rowsPerS.toFixed(0)} | ${pglite.writeMeanMs.toFixed(1)} | ${pglite.spilled} | ${pglite.dropped} |`,
      '',
      `Rows in the Postgres table after the run: ${rowsInDb} (warm-up and flush at close included).`,
      '',
      `## Request log: latency cost, log off vs on (Postgres), open loop at ${RATE} req/s`,
      '',
      `Sluice pinned to core ${PROXY_CORE}, fake provider and load generator on core ${PROVIDER_CORE}, Postgres unpinned; ${ROUNDS} alternating runs of ${SECONDS} s each`,
      '',
      '| request log | p50 ms (runs) | p99 ms (runs) | median-second p99 ms (runs) |',
      '|---|---|---|---|',
      ...(['off', 'on'] as const).map(
        (m) =>
          `| ${m} | ${col(lat[m], 0)
            .map((x) => x.toFixed(3))
            .join(' / ')} | ${col(lat[m], 1)
            .map((x) => x.toFixed(3))
            .join(' / ')} | ${col(lat[m], 2)
            .map((x) => x.toFixed(3))
            .join(' / ')} |`,
      ),
      '',
      '| target | goal | measured | result |',
      '|---|---|---|---|',
      `| write throughput into Postgres | >= 20,000 rows/s | ${postgres.rowsPerS.toFixed(0)} rows/s | ${postgres.rowsPerS >= 20_000 && postgres.spilled === 0 ? 'PASS' : 'MISS'} |`,
      `| p99 with the log on vs off @${RATE}/s | within noise (spread of the off runs' p99: ${noise.toFixed(3)} ms) | ${diff >= 0 ? '+' : ''}${diff.toFixed(3)} ms (medians) | ${Math.abs(diff) <= noise ? 'PASS' : 'MISS'} |`,
    );
  } finally {
    await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

runBench(main);
