// `npm run bench`: the core gateway benchmark, on loopback, in one run.
//
// Core 0: the fake provider (taskset -c 0) and the load generator: a fresh process per measured
// phase (bench/phase.ts, taskset -c 0), so no phase inherits another's heap and GC pauses.
// Core 1: the proxy under test (taskset -c 1), one at a time: the bare pass-through
// (loadtest/bare-proxy.ts), then Sluice with auth, routing, metrics and info logging on.
// Each target gets: 200 concurrent SSE streams (first, on the fresh process, then its peak RSS is
// read), throughput at c=50 (autocannon) with the CPU it cost, open-loop latency at a fixed rate,
// and its overall peak RSS. Results go to stdout and bench/results/latest.{md,json}. The bench
// reports PASS/MISS; it never fails on a miss.
//
// Env: BENCH_DURATION_S (measured seconds per run, default 10), BENCH_RETRIES (a measured run
// disturbed by other processes on the machine is rerun up to this many times, default 2, while the
// bench is under its retry budget; the least disturbed attempt is kept and the report says so),
// BENCH_CPU_PROF_DIR (run both proxies with --cpu-prof writing there; the file names carry the
// pids the report prints; bench/profile.ts profiles one workload at a time), BENCH_SLUICE_REF
// (measure Sluice as of this git commit, exported read-only with `git archive` to a temporary
// directory, instead of the working tree's src/), BENCH_TIMEOUT_S (hard limit, default 600 s),
// BENCH_FEATURES=all (Sluice with every layer on: Redis limits, the request log on Postgres;
// bench/setup.ts says which).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DURATION_S } from './duration.ts';
import type { Target } from './measure.ts';
import { runPhase } from './phase.ts';
import { CLK_TCK, cpusAllowed, killAllSync, type Proc, peakRssBytes, pinSelf, stop } from './procs.ts';
import {
  type Attempt,
  type Attempts,
  type BenchMeta,
  describeAttempt,
  disturbance,
  disturbances,
  markdown,
  notOurs,
  type TargetKey,
  type TargetResult,
  type Usage,
  verdicts,
} from './report.ts';
import {
  ALL_FEATURES,
  CHAT_BODY,
  CONNECTIONS,
  HEADERS,
  PROVIDER_CORE,
  PROXY_CORE,
  RATE,
  ROOT,
  STREAM_BODY,
  STREAMS,
  sluiceSource,
  startBare,
  startFake,
  startSluice,
} from './setup.ts';

const RESULTS = join(ROOT, 'bench', 'results');

function envNumber(name: string, fallback: number, min: number, max: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${name} must be a number ${min}..${max}`);
  return n;
}

const WARMUP_S = Math.min(5, Math.max(1, Math.round(DURATION_S * 0.5)));
const OPEN_LOOP_WARMUP_S = Math.min(2, WARMUP_S);
const TIMEOUT_S = envNumber('BENCH_TIMEOUT_S', 600, 10, 3600);
const RETRIES = envNumber('BENCH_RETRIES', 2, 0, 5);
/** No retry starts after this many seconds of bench, so the whole run stays under ~5 minutes. */
const RETRY_BUDGET_S = 18 * DURATION_S + 20;
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF_DIR || undefined;
const SLUICE_REF = process.env.BENCH_SLUICE_REF || undefined;

const STARTED = performance.now();

function log(message: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/**
 * Runs `run` until an attempt is not disturbed (at most 1 + RETRIES times, and no retry past the
 * retry budget): other processes took CPU on the two cores, or the open-loop generator stalled.
 * Keeps the least disturbed attempt.
 */
async function leastDisturbed<T extends { usage: Usage }>(
  key: TargetKey,
  what: string,
  run: (attempt: number) => Promise<T>,
  sendLagMaxMs?: (result: T) => number,
): Promise<T & Attempts> {
  const attempts: Attempt[] = [];
  let best: T | undefined;
  let kept = 0;
  for (let i = 0; i <= RETRIES; i++) {
    const result = await run(i);
    const attempt: Attempt = { notOurs: notOurs(key, result.usage) };
    if (sendLagMaxMs) attempt.sendLagMaxMs = sendLagMaxMs(result);
    attempts.push(attempt);
    if (best === undefined || disturbance(attempt) < disturbance(attempts[kept]!)) {
      best = result;
      kept = i;
    }
    if (disturbance(attempt) <= 1) break;
    const retry = i < RETRIES && (performance.now() - STARTED) / 1000 < RETRY_BUDGET_S;
    log(`${what} disturbed: ${describeAttempt(attempt)}${retry ? '; again' : ''}`);
    if (!retry) break;
  }
  return { ...best!, attempts, kept };
}

/**
 * Runs every measurement against `origin`; `proc` is the process under test. Streams go first, on
 * the fresh process, so its VmHWM right after them is the peak RSS that 200 streams need; VmHWM
 * after the throughput and latency runs is the process's overall peak. Each attempt runs in a
 * fresh load-generator process, with its own warm-up (shorter on a retry: the target is warm).
 */
async function measure(
  key: TargetKey,
  label: string,
  origin: string,
  proc: Proc,
  fake: Proc,
): Promise<TargetResult> {
  const target: Target = {
    url: `${origin}/v1/chat/completions`,
    headers: HEADERS,
    procPid: proc.pid,
    fakePid: fake.pid,
  };
  const limitMs = (s: number) => (s + 60) * 1000;

  log(`${label}: ${STREAMS.concurrency} streams x ${STREAMS.rounds} rounds, after warm-up`);
  const streams = await leastDisturbed(key, `${label} streams`, (i) =>
    runPhase(
      {
        ...target,
        kind: 'streams',
        body: STREAM_BODY,
        concurrency: STREAMS.concurrency,
        warmupRounds: i === 0 ? 3 : 1,
        rounds: STREAMS.rounds,
        staggerMs: STREAMS.chunks * STREAMS.chunkGapMs,
        expectEvents: STREAMS.chunks + 1,
      },
      PROVIDER_CORE,
      limitMs(30),
    ),
  );
  const streamsPeak = peakRssBytes(proc.pid);
  log(
    `${label}: TTFT p50 ${streams.ttftMs.p50.toFixed(3)} ms p99 ${streams.ttftMs.p99.toFixed(3)} ms, ` +
      `done p99 ${streams.totalMs.p99.toFixed(1)} ms, ${streams.ok}/${streams.streams} ok`,
  );

  log(`${label}: throughput ${WARMUP_S} s warm-up + ${DURATION_S} s at c=${CONNECTIONS}`);
  const rps = await leastDisturbed(key, `${label} throughput`, (i) =>
    runPhase(
      {
        ...target,
        kind: 'rps',
        body: CHAT_BODY,
        connections: CONNECTIONS,
        warmupS: i === 0 ? WARMUP_S : Math.min(2, WARMUP_S),
        durationS: DURATION_S,
      },
      PROVIDER_CORE,
      limitMs(WARMUP_S + DURATION_S),
    ),
  );
  log(
    `${label}: ${rps.rpsMedian.toFixed(0)} req/s (mean ${rps.rps.toFixed(0)}), ` +
      `${rps.cpuUsPerReqMedian.toFixed(1)} CPU us/req (mean ${rps.cpuUsPerReq.toFixed(1)})`,
  );

  log(`${label}: open loop ${RATE} req/s, ${OPEN_LOOP_WARMUP_S} s warm-up + ${DURATION_S} s`);
  const ol = await leastDisturbed(
    key,
    `${label} open loop`,
    () =>
      runPhase(
        {
          ...target,
          kind: 'openLoop',
          body: CHAT_BODY,
          rate: RATE,
          warmupS: OPEN_LOOP_WARMUP_S,
          durationS: DURATION_S,
        },
        PROVIDER_CORE,
        limitMs(OPEN_LOOP_WARMUP_S + DURATION_S),
      ),
    (result) => result.sendLagMs.max,
  );
  log(
    `${label}: p50 ${ol.latencyMs.p50.toFixed(3)} ms, p99 ${ol.latencyMs.p99.toFixed(3)} ms ` +
      `(median-second p99 ${ol.p99MedianSecondMs.toFixed(3)} ms), send lag max ${ol.sendLagMs.max.toFixed(1)} ms`,
  );

  return {
    key,
    label,
    pid: proc.pid,
    cpus: cpusAllowed(proc.pid),
    rps,
    openLoop: ol,
    streams: { ...streams, peakRssBytes: streamsPeak },
    peakRssBytes: peakRssBytes(proc.pid),
  };
}

async function main(): Promise<void> {
  const nproc = cpus().length;
  const pinned = nproc >= 2 && pinSelf(PROVIDER_CORE);
  if (!pinned) throw new Error(`need 2 cores and taskset (nproc ${nproc})`);
  const tmp = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  tmpDir = tmp;
  const results: TargetResult[] = [];
  let sluice = { dir: ROOT, source: '' };
  let fake: Proc | undefined;
  let proxy: Proc | undefined;
  try {
    sluice = sluiceSource(SLUICE_REF, tmp);
    log(`sluice source: ${sluice.source}`);
    const profArgs = CPU_PROF_DIR ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF_DIR] : [];
    const started = await startFake(PROVIDER_CORE);
    fake = started.proc;
    log(`fake provider pid ${fake.pid} on core ${cpusAllowed(fake.pid)} at ${started.origin}`);
    results.push(await measure('direct', 'fake direct', started.origin, fake, fake));

    const bare = await startBare(PROXY_CORE, started.origin, profArgs);
    proxy = bare.proc;
    log(
      `bare proxy pid ${proxy.pid} on core ${cpusAllowed(proxy.pid)}${CPU_PROF_DIR ? ' (--cpu-prof)' : ''}`,
    );
    results.push(await measure('bare', 'bare pass-through', bare.origin, proxy, fake));
    await stop(proxy, 15_000); // graceful, so --cpu-prof gets to write its profile
    proxy = undefined;

    const sl = await startSluice(PROXY_CORE, sluice.dir, tmp, started.port, profArgs);
    proxy = sl.proc;
    log(`sluice pid ${proxy.pid} on core ${cpusAllowed(proxy.pid)}${CPU_PROF_DIR ? ' (--cpu-prof)' : ''}`);
    results.push(await measure('sluice', 'sluice', sl.origin, proxy, fake));
    await stop(proxy, 15_000); // graceful, so --cpu-prof gets to write its profile
    proxy = undefined;
  } finally {
    if (proxy) await stop(proxy);
    if (fake) await stop(fake);
    cleanupSync();
  }

  const meta: BenchMeta = {
    date: new Date().toISOString(),
    node: process.version,
    nproc,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    clkTck: CLK_TCK,
    durationS: DURATION_S,
    warmupS: WARMUP_S,
    connections: CONNECTIONS,
    rate: RATE,
    openLoopWarmupS: OPEN_LOOP_WARMUP_S,
    streams: STREAMS,
    pinning: `fake provider + load generator on core ${PROVIDER_CORE}, proxy under test on core ${PROXY_CORE}`,
    cpuProfile: CPU_PROF_DIR,
    sluice: ALL_FEATURES
      ? `${sluice.source}; BENCH_FEATURES=all (Redis limits, request log on Postgres)`
      : sluice.source,
  };
  const checks = verdicts(new Map(results.map((r) => [r.key, r])));
  const disturbed = disturbances(results);
  const md = markdown(meta, results, checks);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'latest.md'), md);
  writeFileSync(
    join(RESULTS, 'latest.json'),
    `${JSON.stringify({ meta, results, checks, disturbed }, null, 2)}\n`,
  );
  process.stdout.write(`\n${md}\n`);
  log(`written ${join(RESULTS, 'latest.md')} and latest.json`);
}

let tmpDir: string | undefined;

/** Kills every child and removes the temporary directory; safe to call more than once. */
function cleanupSync(): void {
  killAllSync();
  if (tmpDir !== undefined) rmSync(tmpDir, { recursive: true, force: true });
  tmpDir = undefined;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanupSync();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}
process.once('exit', cleanupSync);
const watchdog = setTimeout(() => {
  process.stderr.write(`bench: still running after ${TIMEOUT_S} s; giving up\n`);
  cleanupSync();
  process.exit(1);
}, TIMEOUT_S * 1000);
watchdog.unref();

main().then(
  () => {
    clearTimeout(watchdog);
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
    cleanupSync();
    process.exitCode = 1;
  },
);
