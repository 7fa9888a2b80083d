// Config reload at scale (`npm run bench` runs it last). For each size, a config shaped like the
// issue's (every tenant with a key, a request limit and a concurrency cap under limits.tenants),
// Sluice started as its own process pinned to core 1 (its config-loader thread shares that core),
// the fake provider, the probes and the load generator on core 0. Loopback only; every wait is
// bounded. Per size:
//  1. start: spawn to the first 200 from /healthz (polled every 10 ms); VmRSS then, and again
//     after 10 s idle (V8 hands a finished worker's heap back to the OS only after a delay);
//  2. reload: /healthz probed every 10 ms (open loop, each probe its own request) and chat
//     completions at --rate req/s (open loop, a different tenant per request) for 2 s, then the
//     config file is replaced by one with an extra model and tenant and Sluice gets SIGHUP. The
//     reload is applied when GET /v1/models (polled every 10 ms) lists the new model. Reported:
//     reload time (SIGHUP to applied), the longest gap between two /healthz answers and the
//     slowest probe during the reload, Sluice's own event-loop delay maximum over the reload and
//     over the 2 s before it (prom-client's nodejs_eventloop_lag_max_seconds, which each read of
//     /metrics resets), the latency of the chat requests due during the reload against the 2 s
//     before it (from the intended send time, so a stall counts in full), and VmHWM at the end.
//
//   node bench/config-reload.ts [--tenants 1000,10000,50000] [--rate 100] [--ref COMMIT]
//
// BENCH_DURATION_S (bench/duration.ts) scales the default tenant counts, the 10 s settle and the
// 2 s baseline: 300 / 3,000 / 15,000 tenants, 3 s and 1 s at BENCH_DURATION_S=3.
//
// The config file is a symlink into a directory Sluice does not watch, so replacing it triggers
// only the SIGHUP reload, not the file watcher as well.
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Pool, request } from 'undici';
import { hashKey } from '../src/auth/keys.ts';
import { SCALE, scaled, scaledWarmup } from './duration.ts';
import { freePort, peakRssBytes, pinSelf, runBench, spawnPinned, stop } from './procs.ts';
import { PROVIDER_CORE, PROXY_CORE, sluiceSource, startFake } from './setup.ts';
import { percentile } from './stats.ts';

const { values } = parseArgs({
  options: {
    tenants: { type: 'string', default: [1_000, 10_000, 50_000].map((n) => Math.round(n * SCALE)).join(',') },
    rate: { type: 'string', default: '100' },
    ref: { type: 'string' },
  },
});
const SIZES = values.tenants.split(',').map(Number);
const RATE = Number(values.rate);
const PROBE_MS = 10;
const BASELINE_MS = scaledWarmup(2) * 1000;
const SETTLE_MS = scaled(10) * 1000;
/** Upper bound on a start or a reload; the quadratic loader took minutes at 50,000 tenants. */
const WAIT_MS = 300_000;

interface Result {
  tenants: number;
  yamlLines: number;
  startMs: number;
  rssStartMiB: number;
  rssSettledMiB: number;
  reloadMs: number;
  longestGapMs: number;
  slowestProbeMs: number;
  loopDelayMaxMs: number;
  loopDelayBeforeMs: number;
  before: { count: number; p50: number; p99: number };
  during: { count: number; p50: number; p99: number; max: number };
  errors: number;
  peakRssMiB: number;
}

/** The config: `next` adds a model (m2) and a tenant, so the reload can be seen from outside. */
function configText(port: number, upstream: string, tenants: number, next: boolean): string {
  const lines = [
    `server: { host: 127.0.0.1, port: ${port}, drainTimeoutMs: 2000 }`,
    'logging: { level: info }',
    'requestLog: { enabled: false }',
    'providers:',
    `  fake: { kind: openai, baseUrl: "${upstream}/v1", connections: 64 }`,
    'models:',
    '  m: { deployments: [{ provider: fake }] }',
    ...(next ? ['  m2: { deployments: [{ provider: fake }] }'] : []),
    'tenants:',
  ];
  for (let i = 0; i < tenants; i++) lines.push(`  t${i}: { keys: ["${hashKey(`sk-t${i}`)}"] }`);
  if (next) lines.push(`  fresh: { keys: ["${hashKey('sk-fresh')}"] }`);
  lines.push('limits:', '  tenants:');
  for (let i = 0; i < tenants; i++) {
    lines.push(`    t${i}: { requests: { limit: 100, per: minute }, concurrency: { max: 4 } }`);
  }
  return `${lines.join('\n')}\n`;
}

const mib = (bytes: number) => bytes / 1024 / 1024;
const rss = (pid: number) =>
  Number(/VmRSS:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

async function status(pool: Pool, path: string, key?: string): Promise<{ code: number; text: string }> {
  try {
    const res = await request(`http://127.0.0.1${path}`, {
      dispatcher: pool,
      headers: key ? { authorization: `Bearer ${key}` } : {},
      headersTimeout: WAIT_MS,
      bodyTimeout: WAIT_MS,
    });
    return { code: res.statusCode, text: await res.body.text() };
  } catch {
    return { code: 0, text: '' };
  }
}

/** Runs `fn` at `start + i * everyMs` for i = 0, 1, ... until `stop()` says so (open loop). */
function openLoop(
  everyMs: number,
  stopped: () => boolean,
  fn: (due: number) => Promise<void>,
): Promise<void> {
  const running: Array<Promise<void>> = [];
  const start = performance.now();
  return (async () => {
    for (let i = 0; !stopped(); i++) {
      const due = start + i * everyMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      running.push(fn(due));
    }
    await Promise.all(running);
  })();
}

async function loopLagMax(pool: Pool): Promise<number> {
  const { text } = await status(pool, '/metrics');
  const m = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : Number.NaN;
}

async function measure(tenants: number, dir: string, sluiceDir: string, upstream: string): Promise<Result> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const data = join(dir, `data-${tenants}`);
  const watched = join(dir, `watched-${tenants}`);
  mkdirSync(data);
  mkdirSync(watched);
  const current = join(data, 'current.yaml');
  const text = configText(port, upstream, tenants, false);
  writeFileSync(current, text);
  const link = join(watched, 'sluice.yaml');
  symlinkSync(current, link);

  const spawnedAt = performance.now();
  const proc = spawnPinned('sluice', PROXY_CORE, [join(sluiceDir, 'src', 'main.ts'), '--config', link], dir);
  // Separate pools, so probes never queue behind chat requests, nor the control polls behind either.
  const pool = new Pool(origin, { connections: 64 });
  const probePool = new Pool(origin, { connections: 16 });
  const control = new Pool(origin, { connections: 2 });
  try {
    let up = false;
    while (!up) {
      if (proc.exitCode() !== undefined) throw new Error(`sluice exited: ${proc.stderr()}`);
      if (performance.now() - spawnedAt > WAIT_MS) throw new Error(`sluice not healthy after ${WAIT_MS} ms`);
      up = (await status(control, '/healthz')).code === 200;
      if (!up) await sleep(PROBE_MS);
    }
    const startMs = performance.now() - spawnedAt;
    const rssStart = rss(proc.pid);
    await sleep(SETTLE_MS);
    const rssSettled = rss(proc.pid);

    // Load: chat completions from a different tenant each, and /healthz probes, both open loop.
    let stopAt = Number.POSITIVE_INFINITY;
    const stopped = () => performance.now() >= stopAt;
    const chats: Array<{ due: number; ms: number; code: number }> = [];
    const probes: Array<{ due: number; at: number }> = [];
    let n = 0;
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    const chatLoop = openLoop(1000 / RATE, stopped, async (due) => {
      const key = `sk-t${n++ % tenants}`;
      let code = 0;
      try {
        const res = await request(`${origin}/v1/chat/completions`, {
          method: 'POST',
          dispatcher: pool,
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body,
          headersTimeout: WAIT_MS,
          bodyTimeout: WAIT_MS,
        });
        await res.body.dump();
        code = res.statusCode;
      } catch {
        code = 0;
      }
      chats.push({ due, ms: performance.now() - due, code });
    });
    const probeLoop = openLoop(PROBE_MS, stopped, async (due) => {
      const { code } = await status(probePool, '/healthz');
      if (code === 200) probes.push({ due, at: performance.now() });
    });

    await loopLagMax(control); // each read resets the histogram: the next covers what follows only
    await sleep(BASELINE_MS);
    const loopDelayBeforeMs = await loopLagMax(control);
    const tmp = join(data, 'next.yaml');
    writeFileSync(tmp, configText(port, upstream, tenants, true));
    renameSync(tmp, current);
    const hupAt = performance.now();
    proc.child.kill('SIGHUP');
    let appliedAt = 0;
    while (appliedAt === 0) {
      if (performance.now() - hupAt > WAIT_MS) throw new Error(`reload not applied after ${WAIT_MS} ms`);
      const { code, text: models } = await status(control, '/v1/models', 'sk-t0');
      if (code === 200 && models.includes('"m2"')) appliedAt = performance.now();
      else await sleep(PROBE_MS);
    }
    const loopDelayMaxMs = await loopLagMax(control);
    stopAt = performance.now() + 1_000;
    await Promise.all([chatLoop, probeLoop]);

    const answers = probes
      .filter((p) => p.at >= hupAt && p.at <= appliedAt + PROBE_MS)
      .map((p) => p.at)
      .sort((a, b) => a - b);
    let longestGapMs = 0;
    let prev = hupAt;
    for (const at of [...answers, appliedAt]) {
      longestGapMs = Math.max(longestGapMs, at - prev);
      prev = at;
    }
    const slowestProbeMs = Math.max(
      0,
      ...probes.filter((p) => p.due >= hupAt && p.due <= appliedAt).map((p) => p.at - p.due),
    );
    const window = (from: number, to: number) =>
      chats
        .filter((c) => c.due >= from && c.due < to)
        .map((c) => c.ms)
        .sort((a, b) => a - b);
    const before = window(hupAt - BASELINE_MS, hupAt);
    const during = window(hupAt, appliedAt);
    return {
      tenants,
      yamlLines: text.split('\n').length - 1,
      startMs,
      rssStartMiB: mib(rssStart),
      rssSettledMiB: mib(rssSettled),
      reloadMs: appliedAt - hupAt,
      longestGapMs,
      slowestProbeMs,
      loopDelayMaxMs,
      loopDelayBeforeMs,
      before: { count: before.length, p50: percentile(before, 50), p99: percentile(before, 99) },
      during: {
        count: during.length,
        p50: percentile(during, 50),
        p99: percentile(during, 99),
        max: during.at(-1) ?? Number.NaN,
      },
      errors: chats.filter((c) => c.code !== 200).length,
      peakRssMiB: mib(peakRssBytes(proc.pid)),
    };
  } finally {
    await Promise.all([pool.close(), probePool.close(), control.close()]);
    await stop(proc);
  }
}

async function main(): Promise<void> {
  if (!pinSelf(PROVIDER_CORE)) process.stderr.write('warning: could not pin the bench to core 0\n');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-reload-'));
  const results: Result[] = [];
  let source = '';
  const fake = await startFake(PROVIDER_CORE);
  try {
    const sluice = sluiceSource(values.ref, dir);
    source = sluice.source;
    for (const tenants of SIZES) {
      results.push(await measure(tenants, dir, sluice.dir, fake.origin));
      process.stderr.write(`${tenants} tenants done\n`);
    }
  } finally {
    await stop(fake.proc);
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '—');
  const lines = [
    `## Config reload at scale: ${SIZES.join(' / ')} tenants`,
    '',
    `Command: \`node bench/config-reload.ts --tenants ${SIZES.join(',')} --rate ${RATE}${values.ref ? ` --ref ${values.ref}` : ''}\` · Sluice: ${source} · pinned to core ${PROXY_CORE}, probes and load on core ${PROVIDER_CORE}`,
    '',
    `| tenants | YAML lines | start to healthy s | RSS at healthy / ${SETTLE_MS / 1000} s later MiB | reload s | longest /healthz gap ms | slowest probe ms | event-loop delay max ms (${BASELINE_MS / 1000} s before) | requests during reload | p50 / p99 / max ms (${BASELINE_MS / 1000} s before: p50 / p99) | errors | VmHWM MiB |`,
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.tenants} | ${r.yamlLines} | ${f(r.startMs / 1000, 2)} | ${f(r.rssStartMiB)} / ${f(r.rssSettledMiB)} | ${f(r.reloadMs / 1000, 2)} | ${f(r.longestGapMs)} | ${f(r.slowestProbeMs)} | ${f(r.loopDelayMaxMs)} (${f(r.loopDelayBeforeMs)}) | ${r.during.count} | ${f(r.during.p50, 1)} / ${f(r.during.p99, 1)} / ${f(r.during.max, 1)} (${f(r.before.p50, 1)} / ${f(r.before.p99, 1)}) | ${r.errors} | ${f(r.peakRssMiB)} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

runBench(main);
