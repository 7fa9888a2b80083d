// Turns the measurements into the markdown report and the PASS/MISS verdicts.
import type { OpenLoopResult } from './open-loop.ts';
import type { RpsResult } from './rps.ts';
import type { StreamResult } from './streams.ts';

export type TargetKey = 'direct' | 'bare' | 'sluice';

/** CPU over one phase. */
export interface Usage {
  wallS: number;
  /** The process under test (the fake itself for `direct`), s. */
  procCpuS: number;
  /** Page faults (minor + major) of the process under test. */
  procFaults: number;
  /** The fake provider, s. */
  fakeCpuS: number;
  /** This process (the load generator), s. */
  loadgenCpuS: number;
  /** Busy share of each core from /proc/stat, every process on the machine included (0..1). */
  coreBusy: number[];
}

export interface PerSecond {
  rps: number;
  cpuUsPerReq: number;
  coreBusy: number[];
}

export interface RpsMeasure extends RpsResult, Attempts {
  /** CPU µs of the process under test per completed request, over the whole run. */
  cpuUsPerReq: number;
  /** Medians of the 1-second samples. */
  rpsMedian: number;
  cpuUsPerReqMedian: number;
  usage: Usage;
  perSecond: PerSecond[];
}

export interface TargetResult {
  key: TargetKey;
  label: string;
  pid: number;
  cpus: string;
  rps: RpsMeasure;
  /** `cpuUsPerReq`: the process under test's CPU per request at the fixed rate, warm-up included. */
  openLoop: OpenLoopResult & Attempts & { usage: Usage; cpuUsPerReq: number };
  /** `peakRssBytes`: VmHWM right after the streaming phase, which runs first, on the fresh process. */
  streams: StreamResult & Attempts & { usage: Usage; peakRssBytes: number };
  /** VmHWM over the process's whole life, after all its runs. */
  peakRssBytes: number;
}

export interface Verdict {
  target: string;
  goal: string;
  measured: string;
  pass: boolean;
}

export interface BenchMeta {
  date: string;
  node: string;
  nproc: number;
  cpuModel: string;
  clkTck: number;
  durationS: number;
  warmupS: number;
  connections: number;
  rate: number;
  openLoopWarmupS: number;
  streams: { concurrency: number; rounds: number; chunks: number; chunkGapMs: number };
  pinning: string;
  cpuProfile: string | undefined;
  /** Which Sluice source was measured. */
  sluice: string;
}

const MIB = 1024 * 1024;
const f = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const signed = (n: number, digits = 2): string => (n >= 0 ? '+' : '') + f(n, digits);

function errorsOf(t: TargetResult): number {
  return t.rps.non2xx + t.rps.errors + t.rps.timeouts + t.openLoop.non2xx + t.openLoop.errors + t.streams.bad;
}

/** A phase with more than this share of a core "not ours" counts as disturbed (and is retried). */
export const DISTURBED = 0.15;
/** An open-loop run whose generator was ever this late (ms) counts as disturbed too. */
export const LAG_LIMIT_MS = 20;

/** How disturbed one attempt at a measured run was. */
export interface Attempt {
  /** See notOurs(). */
  notOurs: number;
  /** Open loop only: the generator's largest send lag. */
  sendLagMaxMs?: number;
}

/** Every attempt at a measured run, and which one was kept (the least disturbed). */
export interface Attempts {
  attempts: Attempt[];
  kept: number;
}

/** Above 1: disturbed. */
export function disturbance(a: Attempt): number {
  return Math.max(a.notOurs / DISTURBED, (a.sendLagMaxMs ?? 0) / LAG_LIMIT_MS);
}

export function describeAttempt(a: Attempt): string {
  const parts = [`${(a.notOurs * 100).toFixed(0)}% of a core went to other processes or the kernel`];
  if (a.sendLagMaxMs !== undefined)
    parts.push(`the load generator was up to ${a.sendLagMaxMs.toFixed(1)} ms late`);
  return parts.join(', ');
}

/**
 * Busy time on the two cores that none of the bench's processes was charged for (other processes
 * on the machine, kernel work such as interrupts), as a share of one core.
 */
export function notOurs(key: TargetKey, u: Usage): number {
  const ours = (key === 'direct' ? 0 : u.procCpuS) + u.fakeCpuS + u.loadgenCpuS;
  return (u.coreBusy[0] ?? 0) + (u.coreBusy[1] ?? 0) - ours / u.wallS;
}

/** Phases another process (or a host hiccup) visibly disturbed; their figures deserve a rerun. */
export function disturbances(results: TargetResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    const phases: Array<[string, Attempts]> = [
      ['streams', r.streams],
      ['throughput', r.rps],
      ['open loop', r.openLoop],
    ];
    for (const [phase, { attempts, kept }] of phases) {
      const k = attempts[kept];
      if (!k) continue;
      const n = attempts.length;
      if (disturbance(k) > 1) {
        out.push(
          `${r.label}, ${phase}: ${describeAttempt(k)}${n > 1 ? ` (the least disturbed of ${n} attempts)` : ''}`,
        );
      } else if (n > 1) {
        const others = attempts.filter((_, i) => i !== kept).map(describeAttempt);
        out.push(`${r.label}, ${phase}: attempt ${kept + 1} of ${n} kept; the others: ${others.join('; ')}`);
      }
    }
  }
  return out;
}

export function verdicts(results: Map<TargetKey, TargetResult>): Verdict[] {
  const direct = results.get('direct');
  const bare = results.get('bare');
  const sluice = results.get('sluice');
  if (!direct || !bare || !sluice) return [];
  const addedP99 = (t: TargetResult) => t.openLoop.latencyMs.p99 - direct.openLoop.latencyMs.p99;
  const addedMedianP99 = (t: TargetResult) =>
    t.openLoop.p99MedianSecondMs - direct.openLoop.p99MedianSecondMs;
  const addedTtft = (t: TargetResult) => t.streams.ttftMs.p50 - direct.streams.ttftMs.p50;
  const rpsRatio = sluice.rps.rpsMedian / bare.rps.rpsMedian;
  const cpuRatio = sluice.rps.cpuUsPerReqMedian / bare.rps.cpuUsPerReqMedian;
  return [
    {
      target: 'throughput, c=50',
      goal: '>= 85% of bare req/s',
      measured: `${f(sluice.rps.rpsMedian, 0)} vs ${f(bare.rps.rpsMedian, 0)} req/s = ${f(rpsRatio * 100, 1)}%`,
      pass: rpsRatio >= 0.85,
    },
    {
      target: 'CPU per request',
      goal: '<= 1.25x bare',
      measured: `${f(sluice.rps.cpuUsPerReqMedian, 1)} vs ${f(bare.rps.cpuUsPerReqMedian, 1)} µs = ${f(cpuRatio, 2)}x`,
      pass: cpuRatio <= 1.25,
    },
    {
      target: 'added p99 @ 500 req/s',
      goal: "<= bare's added p99",
      measured:
        `${signed(addedP99(sluice), 3)} vs ${signed(addedP99(bare), 3)} ms ` +
        `(median-second p99: ${signed(addedMedianP99(sluice), 3)} vs ${signed(addedMedianP99(bare), 3)} ms)`,
      pass: addedP99(sluice) <= addedP99(bare),
    },
    {
      target: 'added p99 @ 500 req/s (aim)',
      goal: '<= 1 ms',
      measured: `${signed(addedP99(sluice), 3)} ms (median-second p99: ${signed(addedMedianP99(sluice), 3)} ms)`,
      pass: addedP99(sluice) <= 1,
    },
    {
      target: 'added TTFT p50, 200 streams',
      goal: '< 0.5 ms',
      measured: `${signed(addedTtft(sluice), 3)} ms (bare ${signed(addedTtft(bare), 3)} ms)`,
      pass: addedTtft(sluice) < 0.5,
    },
    {
      target: 'peak RSS, 200 streams',
      goal: '< 200 MiB',
      measured: `${f(sluice.peakRssBytes / MIB, 1)} MiB (after the streams alone ${f(sluice.streams.peakRssBytes / MIB, 1)} MiB; bare ${f(bare.peakRssBytes / MIB, 1)} MiB)`,
      pass: sluice.peakRssBytes < 200 * MIB && sluice.streams.ok > 0,
    },
  ];
}

export function markdown(meta: BenchMeta, results: TargetResult[], checks: Verdict[]): string {
  const direct = results.find((r) => r.key === 'direct');
  const lines: string[] = [];
  lines.push(`# Sluice core gateway benchmark`, '');
  lines.push(
    `${meta.date} · node ${meta.node} · ${meta.nproc} cores (${meta.cpuModel}) · CLK_TCK ${meta.clkTck}`,
    '',
    `Sluice: ${meta.sluice}.`,
    '',
    `Pinning: ${meta.pinning}; loopback only; one proxy at a time, each measured as: ` +
      `${meta.streams.concurrency} concurrent streams x ${meta.streams.rounds} rounds after warm-up ` +
      `(${meta.streams.chunks} chunks ${meta.streams.chunkGapMs} ms apart, first thing on the fresh process), ` +
      `then throughput with autocannon (${meta.connections} connections, ${meta.warmupS} s warm-up + ` +
      `${meta.durationS} s, non-streaming chat completions), then open-loop latency at ${meta.rate} req/s ` +
      `(${meta.openLoopWarmupS} s warm-up + ${meta.durationS} s, from each request's intended send time). ` +
      'Each measured run has its own load-generator process.',
    '',
  );
  if (meta.cpuProfile) {
    lines.push(
      `**Both proxies ran with --cpu-prof (${meta.cpuProfile}): their figures include profiler overhead.**`,
      '',
    );
  }
  lines.push(
    '| target | req/s (c=50) | CPU µs/req | p50 ms @500/s | p99 ms @500/s | added p99 ms | TTFT p50 ms | TTFT p99 ms | added TTFT p50 / p99 ms | stream done p99 ms | peak RSS MiB | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of results) {
    const other = direct && r !== direct;
    const addedP99 = other ? signed(r.openLoop.latencyMs.p99 - direct.openLoop.latencyMs.p99, 3) : '—';
    const addedTtft = other
      ? `${signed(r.streams.ttftMs.p50 - direct.streams.ttftMs.p50, 3)} / ${signed(r.streams.ttftMs.p99 - direct.streams.ttftMs.p99, 3)}`
      : '—';
    lines.push(
      `| ${r.label} | ${f(r.rps.rpsMedian, 0)} | ${f(r.rps.cpuUsPerReqMedian, 1)} | ${f(r.openLoop.latencyMs.p50, 3)} | ` +
        `${f(r.openLoop.latencyMs.p99, 3)} | ${addedP99} | ${f(r.streams.ttftMs.p50, 3)} | ${f(r.streams.ttftMs.p99, 3)} | ` +
        `${addedTtft} | ${f(r.streams.totalMs.p99, 1)} | ${f(r.peakRssBytes / MIB, 1)} | ${errorsOf(r)} |`,
    );
  }
  lines.push(
    '',
    'req/s and CPU µs/req: medians of the 1-second samples of the measured throughput run. CPU µs/req: the ' +
      'process under test (the fake provider itself for "fake direct"), utime+stime from /proc/<pid>/stat ' +
      "divided by completed requests. Peak RSS: VmHWM after all of that process's runs. Added: over fake direct.",
  );
  if (checks.length > 0) {
    lines.push('', '| target | goal | measured (Sluice vs bare) | result |', '|---|---|---|---|');
    for (const c of checks) {
      lines.push(`| ${c.target} | ${c.goal} | ${c.measured} | ${c.pass ? 'PASS' : 'MISS'} |`);
    }
  }
  const disturbed = disturbances(results);
  if (disturbed.length > 0) {
    lines.push('', '**Disturbed** (the machine was not quiet; treat these figures with care, or rerun):');
    for (const d of disturbed) lines.push(`- ${d}`);
  }
  const errors = results.filter((r) => errorsOf(r) > 0);
  if (errors.length > 0) {
    lines.push('', '**Errors:**');
    for (const r of errors) {
      lines.push(
        `- ${r.label}: throughput non2xx ${r.rps.non2xx}, errors ${r.rps.errors}, timeouts ${r.rps.timeouts}; ` +
          `open loop non2xx ${r.openLoop.non2xx}, errors ${r.openLoop.errors}; bad streams ${r.streams.bad}`,
      );
    }
  }
  const pct = (x: number) => `${f(x * 100, 0)}%`;
  const busy = (r: TargetResult, u: Usage) =>
    `${pct(u.procCpuS / u.wallS)} / ${pct(u.coreBusy[1] ?? Number.NaN)} / ${pct(u.coreBusy[0] ?? Number.NaN)}, ` +
    `${pct(notOurs(r.key, u))}`;
  lines.push(
    '',
    '## Details',
    '',
    '| target | pid (cores) | req/s mean | CPU µs/req mean | fake CPU µs/req | CPU µs/req @500/s | c=50 run: under test / core 1 / core 0 busy, not ours | streams: under test / core 1 / core 0 busy, not ours | open loop: median-second p99 ms | open loop: send lag p99 / max ms | closed-loop p50/p99 ms (c=50) | peak RSS MiB after the streams | page faults, streams / c=50 run |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of results) {
    const u = r.rps.usage;
    const s = r.streams.usage;
    lines.push(
      `| ${r.label} | ${r.pid} (${r.cpus}) | ${f(r.rps.rps, 0)} | ${f(r.rps.cpuUsPerReq, 1)} | ` +
        `${f((u.fakeCpuS * 1e6) / r.rps.requests, 1)} | ` +
        `${f(r.openLoop.cpuUsPerReq, 1)} | ${busy(r, u)} | ${busy(r, s)} | ${f(r.openLoop.p99MedianSecondMs, 3)} | ` +
        `${f(r.openLoop.sendLagMs.p99, 3)} / ${f(r.openLoop.sendLagMs.max, 1)} | ` +
        `${f(r.rps.latencyP50Ms, 1)} / ${f(r.rps.latencyP99Ms, 1)} | ${f(r.streams.peakRssBytes / MIB, 1)} | ` +
        `${s.procFaults} / ${u.procFaults} |`,
    );
  }
  lines.push(
    '',
    '- Means: over the whole measured throughput run. Fake CPU µs/req: the fake provider during that run; it does ' +
      'the same work per request for every target, so a figure well above the others means a slower host ' +
      '(or fewer requests per event-loop turn at a lower rate). CPU µs/req @500/s: the process under test at the ' +
      'fixed open-loop rate, warm-up included.',
    '- Busy: share of one core; "not ours" is busy time on both cores that none of the bench\'s processes was ' +
      'charged for (other processes on the machine, kernel work). A measured run with more than ' +
      `${(DISTURBED * 100).toFixed(0)}% not ours, or an open loop whose generator was more than ${LAG_LIMIT_MS} ms ` +
      'late, is rerun (BENCH_RETRIES) and the least disturbed attempt kept.',
    '- Median-second p99: the median of the per-second p99s of the open loop, which one disturbed second cannot ' +
      'move. Send lag: how late the generator issued requests against their intended times.',
    '- Peak RSS after the streams: VmHWM right after the streaming runs, which come first on the fresh process. ' +
      'Page faults: minor + major faults of the process under test during the measured streaming and throughput ' +
      'runs (a heap growing into fresh memory shows up here).',
    '',
  );
  return lines.join('\n');
}
