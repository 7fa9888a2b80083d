// The three measured phases, each with the CPU it cost. They run inside a fresh load-generator
// process (bench/phase.ts) so that the generator's heap holds one phase's garbage only: in the
// long-lived orchestrator, scavenges of 10-50 ms (heap grown by earlier phases) showed up as
// generator stalls in the latency figures.

import type { OpenLoopResult } from './open-loop.ts';
import { openLoop } from './open-loop.ts';
import { CLK_TCK, coreBusyTicks, cpuTicks, procStat } from './procs.ts';
import type { PerSecond, RpsMeasure, Usage } from './report.ts';
import { runRps } from './rps.ts';
import { runStreams, type StreamResult } from './streams.ts';

export interface Target {
  url: string;
  headers: Record<string, string>;
  /** The process under test (the fake itself for `direct`). */
  procPid: number;
  fakePid: number;
}

export interface StreamsJob extends Target {
  kind: 'streams';
  body: string;
  concurrency: number;
  warmupRounds: number;
  rounds: number;
  staggerMs: number;
  expectEvents: number;
}

export interface RpsJob extends Target {
  kind: 'rps';
  body: string;
  connections: number;
  warmupS: number;
  durationS: number;
}

export interface OpenLoopJob extends Target {
  kind: 'openLoop';
  body: string;
  rate: number;
  warmupS: number;
  durationS: number;
}

export type Job = StreamsJob | RpsJob | OpenLoopJob;

export type StreamsMeasure = StreamResult & { usage: Usage };
export type OpenLoopMeasure = OpenLoopResult & { usage: Usage; cpuUsPerReq: number };
export type RpsPhase = Omit<RpsMeasure, 'attempts' | 'kept'>;

interface Snap {
  t: number;
  proc: number;
  procFaults: number;
  fake: number;
  /** This process's CPU (the load generator), µs. */
  self: number;
  cores: number[];
}

function snap(t: Target): Snap {
  const self = process.cpuUsage();
  const proc = procStat(t.procPid);
  return {
    t: performance.now(),
    proc: proc.ticks,
    procFaults: proc.minorFaults + proc.majorFaults,
    fake: cpuTicks(t.fakePid),
    self: self.user + self.system,
    cores: coreBusyTicks(),
  };
}

function usage(a: Snap, b: Snap): Usage {
  const wallS = (b.t - a.t) / 1000;
  return {
    wallS,
    procCpuS: (b.proc - a.proc) / CLK_TCK,
    procFaults: b.procFaults - a.procFaults,
    fakeCpuS: (b.fake - a.fake) / CLK_TCK,
    loadgenCpuS: (b.self - a.self) / 1e6,
    coreBusy: b.cores.map((v, i) => (v - (a.cores[i] ?? v)) / CLK_TCK / wallS),
  };
}

function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((x, y) => x - y);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Warm-up streams, then the measured rounds (each worker's first stream unrecorded). */
export async function measureStreams(job: StreamsJob): Promise<StreamsMeasure> {
  const opts = {
    url: job.url,
    headers: job.headers,
    body: job.body,
    concurrency: job.concurrency,
    staggerMs: job.staggerMs,
    expectEvents: job.expectEvents,
    timeoutMs: 20_000,
  };
  if (job.warmupRounds > 0) await runStreams({ ...opts, rounds: job.warmupRounds, warmupRounds: 0 });
  const before = snap(job);
  const st = await runStreams({ ...opts, rounds: job.rounds, warmupRounds: 1 });
  return { ...st, usage: usage(before, snap(job)) };
}

/** A warm-up run, then the measured one, sampled every second. */
export async function measureRps(job: RpsJob): Promise<RpsPhase> {
  const opts = { url: job.url, headers: job.headers, body: job.body, connections: job.connections };
  if (job.warmupS > 0) await runRps({ ...opts, durationS: job.warmupS });
  const r = await runRps({ ...opts, durationS: job.durationS }, () => snap(job));
  const perSecond: PerSecond[] = [];
  for (let i = 1; i < r.samples.length; i++) {
    const a = r.samples[i - 1]!;
    const b = r.samples[i]!;
    const dt = (b.t - a.t) / 1000;
    const n = b.responses - a.responses;
    if (dt < 0.5 || n === 0) continue; // the short tail after the last full second
    const u = usage(a.s, b.s);
    perSecond.push({ rps: n / dt, cpuUsPerReq: (u.procCpuS * 1e6) / n, coreBusy: u.coreBusy });
  }
  const { samples, ...result } = r;
  const whole = usage(samples[0]!.s, samples[samples.length - 1]!.s);
  return {
    ...result,
    cpuUsPerReq: r.requests > 0 ? (whole.procCpuS * 1e6) / r.requests : Number.NaN,
    rpsMedian: median(perSecond.map((p) => p.rps)),
    cpuUsPerReqMedian: median(perSecond.map((p) => p.cpuUsPerReq)),
    usage: whole,
    perSecond,
  };
}

export async function measureOpenLoop(job: OpenLoopJob): Promise<OpenLoopMeasure> {
  const before = snap(job);
  const result = await openLoop({
    url: job.url,
    headers: job.headers,
    body: job.body,
    rate: job.rate,
    durationS: job.durationS,
    warmupS: job.warmupS,
    connections: 256,
    timeoutMs: 10_000,
  });
  const u = usage(before, snap(job));
  return { ...result, usage: u, cpuUsPerReq: (u.procCpuS * 1e6) / result.sent };
}
