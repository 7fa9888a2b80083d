// Limiter benchmark (`npm run bench` runs it last). Two scenarios, loopback only, bounded in
// request count and time:
//  1. Cost: Sluice as its own process pinned to core 1 (the fake provider and a fresh load
//     generator on core 0, as in bench/run.ts), with limits off, with every limiter layer on Redis
//     (rate + tokens + concurrency + fleet: one round trip per request, nothing refused), and with
//     the same limits in memory. Latency from the open loop at a fixed rate, throughput and CPU per
//     request from the closed loop at c=50. Runs a b c three times and reports the median of each.
//     Target: p99 added by Redis limits under 1 ms.
//  2. Accuracy: three gateways sharing one Redis, 5,000 requests at 300 in flight against a limit
//     of 1,000. Target: admitted within 0.5% of the limit.
// BENCH_DURATION_S (bench/duration.ts) scales --seconds (5 in the full run), the rounds of 1 (3)
// and of 2 (3), and the 2 s warm-ups: 2 s, 1 round each, 1 s warm-ups at BENCH_DURATION_S=3. The
// accuracy run's request count and limit stay: they are what the target is about.
//
//   node bench/limits.ts [--rate 500] [--seconds 5] [--redis redis://127.0.0.1:6379]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import type { Gateway } from '../src/app.ts';
import { hashKey } from '../src/auth/keys.ts';
import { type FakeProvider, startFakeProvider } from '../src/fake-provider/server.ts';
import { scaled, scaledRounds, scaledWarmup } from './duration.ts';
import { inProcessGateway } from './gateway.ts';
import { runPhase } from './phase.ts';
import { freePort, pinSelf, runBench, spawnPinned, stop, waitReady } from './procs.ts';
import { CHAT_BODY, HEADERS, PROVIDER_CORE, PROXY_CORE, ROOT, sluiceConfig, startFake } from './setup.ts';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: String(scaled(5)) },
    redis: { type: 'string', default: process.env.REDIS_URL || 'redis://127.0.0.1:6379' },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const ROUNDS = scaledRounds(3);
const ACCURACY_RUNS = scaledRounds(3);
const WARMUP_S = scaledWarmup(2);
const REDIS_URL = values.redis;
const KEY = 'sk-bench-limits';
const RUN = `bench-limits-${process.pid}-${Date.now().toString(36)}`;
const DEADLINE = Date.now() + 150_000;

type Limits = Record<string, unknown>;

async function gateway(fake: FakeProvider, limits: Limits): Promise<{ gw: Gateway; url: string }> {
  const { gateway: gw, url } = await inProcessGateway(
    {
      logging: { level: 'warn' },
      providers: { fake: { kind: 'openai', baseUrl: fake.baseUrl, connections: 64 } },
      models: { 'bench-model': { deployments: [{ provider: 'fake' }] } },
      tenants: { bench: { keys: [hashKey(KEY)] } },
      limits: { worker: { enabled: false }, ...limits },
    },
    'warn',
  );
  return { gw, url };
}

const BODY = JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: 'hello' }] });

/** Closed loop: `concurrency` workers send `total` requests over the urls, round robin. */
async function load(urls: string[], total: number, concurrency: number) {
  const agent = new Agent({ connections: concurrency });
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  let sent = 0;
  const started = performance.now();
  const worker = async () => {
    while (sent < total && Date.now() < DEADLINE) {
      const url = urls[sent++ % urls.length]!;
      const t0 = performance.now();
      try {
        const res = await request(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
          body: BODY,
          dispatcher: agent,
        });
        await res.body.dump();
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      } catch {
        statuses.set(0, (statuses.get(0) ?? 0) + 1);
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  await agent.close();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { p50: q(0.5), p99: q(0.99), p999: q(0.999), rps: latencies.length / seconds, statuses };
}

/** p50/p99 of a prom-client histogram from /metrics text, by linear interpolation in buckets. */
function histogramQuantiles(
  text: string,
  name: string,
  label: string,
): { p50: number; p99: number } | undefined {
  const buckets: Array<[number, number]> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(label)) continue;
    const le = /le="([^"]+)"/.exec(line)![1]!;
    buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), Number(line.split(' ').pop())]);
  }
  if (buckets.length === 0) return undefined;
  const total = buckets.at(-1)![1];
  const at = (p: number) => {
    const target = p * total;
    let prevLe = 0;
    let prevCount = 0;
    for (const [le, count] of buckets) {
      if (count >= target) {
        if (!Number.isFinite(le)) return prevLe;
        return prevLe + ((le - prevLe) * (target - prevCount)) / Math.max(1, count - prevCount);
      }
      prevLe = le;
      prevCount = count;
    }
    return prevLe;
  };
  return { p50: at(0.5), p99: at(0.99) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function cleanup(): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${RUN}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}

async function main(): Promise<void> {
  const fake = await startFakeProvider({ port: 0 });
  try {
    process.stdout.write(`${(await run(fake)).join('\n')}\n`);
  } finally {
    await fake.close();
    await cleanup();
  }
}

async function metricsOf(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

/** Decisions the local fallback made (Redis timed out or was unreachable): they are not shared. */
function localDecisions(text: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith('sluice_limiter_decisions_total{') && l.includes('outcome="local"'))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function run(fake: FakeProvider): Promise<string[]> {
  const every: Limits = {
    tenants: {
      bench: {
        requests: { limit: 1_000_000_000, per: 'second' },
        tokens: { limit: 1_000_000_000_000, per: 'second' },
        concurrency: { max: 100_000 },
      },
    },
    fleet: { models: { 'bench-model': { maxInFlight: 100_000 } } },
  };
  const configs: Record<string, Limits> = {
    off: { worker: { enabled: false } },
    redis: { worker: { enabled: false }, redis: { url: REDIS_URL, keyPrefix: `${RUN}-cost` }, ...every },
    memory: { worker: { enabled: false }, ...every },
  };
  type Sample = { p50: number; p99: number; p99Second: number; rps: number; cpuUs: number; local: number };
  const results: Record<string, Sample[]> = { off: [], redis: [], memory: [] };
  let decision: { p50: number; p99: number } | undefined;
  pinSelf(PROVIDER_CORE);
  const upstream = await startFake(PROVIDER_CORE);
  const tmp = mkdtempSync(join(tmpdir(), 'sluice-bench-limits-'));
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, limits] of Object.entries(configs)) {
        const port = await freePort();
        const file = join(tmp, `${name}.yaml`);
        const base = sluiceConfig(port, upstream.port).replace(
          'logging: { level: info }',
          'logging: { level: warn }',
        );
        writeFileSync(file, `${base}limits: ${JSON.stringify(limits)}\n`);
        const proc = spawnPinned('sluice', PROXY_CORE, ['src/main.ts', '--config', file], ROOT);
        const origin = `http://127.0.0.1:${port}`;
        try {
          await waitReady(proc, `${origin}/healthz`);
          const target = {
            url: `${origin}/v1/chat/completions`,
            headers: HEADERS,
            procPid: proc.pid,
            fakePid: upstream.proc.pid,
          };
          const rps = await runPhase(
            {
              ...target,
              kind: 'rps',
              body: CHAT_BODY,
              connections: 50,
              warmupS: WARMUP_S,
              durationS: SECONDS,
            },
            PROVIDER_CORE,
            (SECONDS + 60) * 1000,
          );
          const ol = await runPhase(
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
          );
          const text = await metricsOf(origin);
          if (name === 'redis')
            decision = histogramQuantiles(text, 'sluice_limiter_duration_seconds', 'store="redis"');
          results[name]!.push({
            p50: ol.latencyMs.p50,
            p99: ol.latencyMs.p99,
            p99Second: ol.p99MedianSecondMs,
            rps: rps.rpsMedian,
            cpuUs: rps.cpuUsPerReqMedian,
            local: localDecisions(text),
          });
          process.stderr.write(
            `[limits] ${name}: p50 ${ol.latencyMs.p50.toFixed(3)} p99 ${ol.latencyMs.p99.toFixed(3)} ms @${RATE}/s, ${rps.rpsMedian.toFixed(0)} req/s, ${rps.cpuUsPerReqMedian.toFixed(1)} CPU us/req\n`,
          );
        } finally {
          await stop(proc);
        }
      }
    }
  } finally {
    await stop(upstream.proc);
    rmSync(tmp, { recursive: true, force: true });
  }
  const row = (name: string) => {
    const r = results[name]!;
    return {
      p50: median(r.map((x) => x.p50)),
      p99: median(r.map((x) => x.p99)),
      p99Second: median(r.map((x) => x.p99Second)),
      rps: median(r.map((x) => x.rps)),
      cpuUs: median(r.map((x) => x.cpuUs)),
      local: r.reduce((n, x) => n + x.local, 0),
    };
  };
  const off = row('off');
  const lines = [
    '## Limiter cost: every layer on, nothing refused',
    '',
    `Command: \`node bench/limits.ts --rate ${RATE} --seconds ${SECONDS}\` · Sluice pinned to core ${PROXY_CORE}, fake provider and load generator on core ${PROVIDER_CORE}, Redis unpinned · median of ${ROUNDS} alternating runs each`,
    '',
    `| limits | p50 ms @${RATE}/s | p99 ms @${RATE}/s | median-second p99 ms | added p50 ms | added p99 ms | req/s at c=50 | CPU µs/req | local decisions |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const name of ['off', 'redis', 'memory']) {
    const r = row(name);
    lines.push(
      `| ${name} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.p99Second.toFixed(3)} | ${(r.p50 - off.p50).toFixed(3)} | ${(r.p99 - off.p99).toFixed(3)} | ${r.rps.toFixed(0)} | ${r.cpuUs.toFixed(1)} | ${name === 'off' ? '-' : r.local} |`,
    );
  }
  const redisRow = row('redis');
  const added99 = redisRow.p99 - off.p99;
  lines.push(
    '',
    `One decision on Redis (sluice_limiter_duration_seconds, last redis run, both loops): p50 ${decision ? (decision.p50 * 1000).toFixed(3) : '?'} ms, p99 ${decision ? (decision.p99 * 1000).toFixed(3) : '?'} ms.`,
  );

  // Accuracy across three instances.
  const accuracy: Array<{ admitted: number; refused: number; other: number; local: number }> = [];
  for (let rep = 0; rep < ACCURACY_RUNS; rep++) {
    const limits = {
      redis: { url: REDIS_URL, keyPrefix: `${RUN}-acc${rep}` },
      tenants: { bench: { requests: { limit: 1_000, per: 'hour' } } },
    };
    const gws = await Promise.all([0, 1, 2].map(() => gateway(fake, limits)));
    const r = await load(
      gws.map((g) => g.url),
      5_000,
      300,
    );
    let local = 0;
    for (const g of gws) local += localDecisions(await metricsOf(g.url));
    await Promise.all(gws.map((g) => g.gw.shutdown(1_000)));
    const admitted = r.statuses.get(200) ?? 0;
    const refused = r.statuses.get(429) ?? 0;
    accuracy.push({ admitted, refused, other: 5_000 - admitted - refused, local });
  }
  const worstError = Math.max(...accuracy.map((a) => Math.abs(a.admitted - 1_000) / 1_000));
  const anyLocal = accuracy.some((a) => a.local > 0);
  lines.push(
    '',
    '## Limit accuracy: three instances, one Redis, 5,000 requests at 300 in flight, limit 1,000',
    '',
    '| run | admitted | refused (429) | other | error vs limit | local decisions |',
    '|---:|---:|---:|---:|---:|---:|',
    ...accuracy.map(
      (a, i) =>
        `| ${i + 1} | ${a.admitted} | ${a.refused} | ${a.other} | ${((Math.abs(a.admitted - 1_000) / 1_000) * 100).toFixed(2)}% | ${a.local} |`,
    ),
    '',
    '| target | goal | measured | result |',
    '|---|---|---|---|',
    `| p99 latency added by Redis limits @${RATE}/s | < 1 ms | ${added99.toFixed(3)} ms | ${added99 < 1 ? 'PASS' : 'MISS'} |`,
    `| admitted vs limit, 3 instances, all decisions in Redis | within 0.5% | ${(worstError * 100).toFixed(2)}% worst${anyLocal ? ', some decisions local' : ''} | ${worstError <= 0.005 && !anyLocal ? 'PASS' : 'MISS'} |`,
  );
  return lines;
}

runBench(main);
