// Memory after a burst of slow streams: does the gateway give memory back once ~10,000 slow
// streams have ended, and if not, who holds it (JS objects still reachable, V8 heap grown but free,
// or the C allocator keeping freed pages)?
//
//   node bench/stream-memory.ts [--streams 9800] [--clients 4] [--chunks 19] [--chunk-gap-ms 2000]
//       [--ramp-ms 20000] [--observe-s 30] [--bursts 1]
//       [--variants glibc,arena2,trim,jemalloc,jemalloc-bg,semi16] [--no-snapshot]
//       [--request-log off|pglite] [--ref GIT_REF] [--timeout-s SECONDS]
//
// --ref measures Sluice as of a commit (exported with git archive) instead of the working tree.
// --timeout-s defaults to the expected length of the run plus two minutes per burst.
//
// Per variant (memory settings of the gateway process), on loopback only:
//   1. the fake provider (started once) streams `chunks` chunks `chunk-gap-ms` apart;
//   2. the gateway (`node --expose-gc --import bench/memory-probe.ts src/main.ts`, a fresh process)
//      is sampled every second: VmRSS from /proc, process.memoryUsage() and V8 heap spaces from the
//      preload, glibc's own figures (mallinfo2, arenas) from bench/malloc-probe.c when a C compiler
//      is there to build it;
//   3. `clients` load processes open `streams` streams in all over `ramp-ms`, each stream on its own
//      connection from its own loopback address (127.0.0.2, ...), read them to the end, close;
//   4. `observe-s` seconds of sampling with nothing done (steps 3 and 4 run `bursts` times, to see
//      whether a second burst grows memory past the first one's);
//   5. two full GCs; then a memory-reducing GC (V8's last-resort GC, as on a low-memory
//      notification); then malloc_trim(0); then a heap snapshot, summarised by constructor with
//      what holds the most numerous objects (bench/heap-summary.ts). Each step shows which part of
//      the resident memory it gives back: dead JS objects, V8 heap grown but empty, or freed memory
//      glibc's allocator keeps; what is left is live.
// Results: a table per variant on stdout and in bench/results/stream-memory.md, every sample in
// bench/results/stream-memory.json. A hard timeout kills everything; every loop is bounded.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { hashKey } from '../src/auth/keys.ts';
import { heapSummaryMarkdown, summarizeHeap } from './heap-summary.ts';
import type { ProbeOp, ProbeSample } from './memory-probe.ts';
import { freePort, killAllSync, type Proc, runBench, stop, track, waitReady } from './procs.ts';
import { KEY, MODEL, ROOT, sluiceSource } from './setup.ts';
import type { ClientJob, ClientResult } from './stream-memory-client.ts';

const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
/** Memory settings to compare: environment variables and node options of the gateway process. */
const VARIANTS: Record<string, { env: Record<string, string>; node: string[] }> = {
  glibc: { env: {}, node: [] },
  arena2: { env: { MALLOC_ARENA_MAX: '2' }, node: [] },
  trim: { env: { MALLOC_TRIM_THRESHOLD_: '131072' }, node: [] },
  jemalloc: { env: { LD_PRELOAD: JEMALLOC }, node: [] },
  // jemalloc purges freed pages on a timer only with its background thread; without it, only when
  // the process allocates again.
  'jemalloc-bg': { env: { LD_PRELOAD: JEMALLOC, MALLOC_CONF: 'background_thread:true' }, node: [] },
  semi16: { env: {}, node: ['--max-semi-space-size=16'] },
};

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '9800' },
    clients: { type: 'string', default: '4' },
    chunks: { type: 'string', default: '19' },
    'chunk-gap-ms': { type: 'string', default: '2000' },
    'ramp-ms': { type: 'string', default: '20000' },
    'observe-s': { type: 'string', default: '30' },
    bursts: { type: 'string', default: '1' },
    variants: { type: 'string', default: 'glibc' },
    snapshot: { type: 'boolean', default: true },
    'request-log': { type: 'string', default: 'off' },
    ref: { type: 'string' },
    'timeout-s': { type: 'string' },
  },
  allowNegative: true,
});

function intArg(name: keyof typeof values, min: number, max: number): number {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer ${min}..${max}`);
  return n;
}
const STREAMS = intArg('streams', 1, 20_000);
const CLIENTS = intArg('clients', 1, 64);
const CHUNKS = intArg('chunks', 1, 1000);
const GAP_MS = intArg('chunk-gap-ms', 0, 10_000);
const RAMP_MS = intArg('ramp-ms', 0, 60_000);
const OBSERVE_S = intArg('observe-s', 1, 600);
const BURSTS = intArg('bursts', 1, 10);
const VARIANT_NAMES = values.variants.split(',').filter(Boolean);
for (const v of VARIANT_NAMES) if (!(v in VARIANTS)) throw new Error(`unknown variant ${v}`);
if (!['off', 'pglite'].includes(values['request-log'])) throw new Error('--request-log off|pglite');
/** A stream lasts about this long once its first chunk is out. */
const STREAM_MS = Math.max(0, CHUNKS - 1) * GAP_MS;
const TIMEOUT_S =
  values['timeout-s'] === undefined
    ? 60 + VARIANT_NAMES.length * BURSTS * (Math.ceil((RAMP_MS + STREAM_MS) / 1000) + OBSERVE_S + 120)
    : intArg('timeout-s', 10, 86_400);

interface Sample {
  /** Seconds since the gateway was ready. */
  t: number;
  phase: 'baseline' | 'load' | 'after' | 'gc' | 'reduce' | 'trim';
  /** The burst this sample belongs to (0 before the first). */
  burst: number;
  /** Open file descriptors of the gateway: about 2 per open stream. */
  fds: number;
  rss: number;
  rssAnon: number;
  rssFile: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  v8Malloced: number;
  /** Resident bytes of V8's heap spaces (their physical size; heapTotal is what is committed). */
  v8Physical: number;
  /** Per V8 heap space: committed (size), used, resident (physical) bytes. */
  spaces: ProbeSample['spaces'];
  malloc?: ProbeSample['malloc'];
}

interface VariantResult {
  variant: string;
  env: Record<string, string>;
  node: string[];
  streams: { ok: number; bad: number; outcomes: Record<string, number>; retries: number; peakOpen: number };
  samples: Sample[];
  /** Per burst, seconds since ready at which its last client process exited. */
  endedAt: number[];
  peakRss: number;
  metricsAfter: string[];
  /** Where the resident memory is, by mapping kind, at named moments. */
  maps: Record<string, MapsSummary>;
  heap?: string;
}

function procMemory(pid: number): { rss: number; rssAnon: number; rssFile: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s*(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), rssAnon: kb('RssAnon'), rssFile: kb('RssFile'), hwm: kb('VmHWM') };
}

interface MapsSummary {
  /** Resident bytes of the brk heap (glibc's main arena). */
  brkHeap: number;
  /** Resident bytes of anonymous mappings (V8 pages, other glibc arenas, stacks, mmapped chunks). */
  anon: number;
  /** Resident bytes of file mappings (the node binary, shared libraries). */
  file: number;
  /** The largest anonymous mappings by resident size: [size, resident] in bytes. */
  topAnon: Array<[number, number]>;
}

/** /proc/<pid>/smaps, summed by kind: enough to see whether RSS is V8's, malloc's or the binary's. */
function mapsSummary(pid: number): MapsSummary {
  const out: MapsSummary = { brkHeap: 0, anon: 0, file: 0, topAnon: [] };
  const anon: Array<[number, number]> = [];
  let kind: 'brk' | 'anon' | 'file' = 'anon';
  let size = 0;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[3]!;
      kind = path === '[heap]' ? 'brk' : path === '' || path.startsWith('[') ? 'anon' : 'file';
      size = Number.parseInt(head[2]!, 16) - Number.parseInt(head[1]!, 16);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (!rss) continue;
    const bytes = Number(rss[1]) * 1024;
    if (kind === 'brk') out.brkHeap += bytes;
    else if (kind === 'file') out.file += bytes;
    else {
      out.anon += bytes;
      anon.push([size, bytes]);
    }
  }
  out.topAnon = anon.sort((a, b) => b[1] - a[1]).slice(0, 8);
  return out;
}

function openFilesLimit(): number {
  const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : Number.POSITIVE_INFINITY;
}

/** Builds bench/malloc-probe.c into `dir`; undefined (no glibc figures) without a C compiler. */
function buildMallocProbe(dir: string): string | undefined {
  const out = join(dir, 'malloc-probe.node');
  try {
    execFileSync('cc', ['-O2', '-shared', '-fPIC', '-o', out, join(ROOT, 'bench', 'malloc-probe.c')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return out;
  } catch (err) {
    process.stderr.write(
      `malloc probe not built (${(err as Error).message.split('\n')[0]}): no glibc figures\n`,
    );
    return undefined;
  }
}

function gatewayConfig(src: string, port: number, upstreamPort: number, dataDir: string): string {
  // Added by another change of the same issue: off here, so 9,800 connections from one address
  // are not refused. Only written when this checkout knows the setting.
  const perAddress = readFileSync(join(src, 'src', 'config', 'schema.ts'), 'utf8').includes(
    'maxConnectionsPerAddress',
  )
    ? ', maxConnectionsPerAddress: 0'
    : '';
  return [
    `server: { host: 127.0.0.1, port: ${port}, drainTimeoutMs: 2000${perAddress} }`,
    'logging: { level: info }',
    'providers:',
    `  fake: { kind: openai, baseUrl: "http://127.0.0.1:${upstreamPort}/v1", connections: 10000 }`,
    'models:',
    `  ${MODEL}: { deployments: [{ provider: fake }], queue: { maxConcurrent: 10000 } }`,
    'tenants:',
    `  bench: { keys: ["${hashKey(KEY)}"] }`,
    // The worker shedder would refuse part of the burst while the streams are being opened: this
    // measures memory, so every stream is let in.
    'limits: { worker: { enabled: false } }',
    values['request-log'] === 'pglite'
      ? `requestLog: { enabled: true, dataDir: "${dataDir}" }`
      : 'requestLog: { enabled: false }',
    '',
  ].join('\n');
}

/** A child with stderr kept, registered so killAllSync() kills it. */
function spawnTracked(name: string, args: string[], env: NodeJS.ProcessEnv, ipc: boolean): Proc {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', ipc ? 'ignore' : 'pipe', 'pipe', ...(ipc ? (['ipc'] as const) : [])],
    env: { ...process.env, NODE_OPTIONS: '', ...env },
  });
  if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
  const untrack = track(child);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err = (err + d).slice(-4096);
  });
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (c) => {
      code = c;
      untrack();
      resolve(c);
    });
  });
  return { name, pid: child.pid, child, stderr: () => err, exited, exitCode: () => code };
}

/** Request/response over the gateway's IPC channel to bench/memory-probe.ts. */
function prober(child: ChildProcess): (op: ProbeOp, path?: string) => Promise<ProbeSample> {
  let next = 0;
  const waiting = new Map<number, (s: ProbeSample) => void>();
  child.on('message', (msg: ProbeSample) => {
    waiting.get(msg.id)?.(msg);
    waiting.delete(msg.id);
  });
  return (op, path) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`memory probe: no answer to ${op}`));
      }, 180_000);
      waiting.set(id, (s) => {
        clearTimeout(timer);
        if (s.error) reject(new Error(`memory probe: ${s.error}`));
        else resolve(s);
      });
      child.send({ id, op, path });
    });
}

async function runClients(origin: string): Promise<ClientResult[]> {
  const deadlineMs = RAMP_MS + STREAM_MS + 90_000;
  const procs: Array<{ proc: Proc; out: Promise<string> }> = [];
  for (let k = 0; k < CLIENTS; k++) {
    const count = Math.floor(STREAMS / CLIENTS) + (k < STREAMS % CLIENTS ? 1 : 0);
    if (count === 0) continue;
    const job: ClientJob = {
      url: `${origin}/v1/chat/completions`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'Hello' }] }),
      count,
      localAddress: `127.0.0.${2 + k}`,
      rampMs: RAMP_MS,
      streamTimeoutMs: STREAM_MS + 60_000,
      expectEvents: CHUNKS + 2,
      deadlineMs,
    };
    const proc = spawnTracked(
      `client ${k}`,
      [join(ROOT, 'bench', 'stream-memory-client.ts'), JSON.stringify(job)],
      {},
      false,
    );
    let text = '';
    proc.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      text += d;
    });
    procs.push({ proc, out: proc.exited.then(() => text) });
  }
  const results: ClientResult[] = [];
  for (const { proc, out } of procs) {
    const text = await out;
    if (proc.exitCode() !== 0) throw new Error(`${proc.name} exited ${proc.exitCode()}: ${proc.stderr()}`);
    results.push(JSON.parse(text.trim().split('\n').pop()!) as ClientResult);
  }
  return results;
}

async function scrapeMetrics(origin: string): Promise<string[]> {
  const res = await fetch(`${origin}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return text
    .split('\n')
    .filter((l) => /^sluice_(requests_in_flight|upstream_connections|queue_in_flight|queue_depth)\b/.test(l));
}

async function runVariant(
  src: string,
  variant: string,
  fakePort: number,
  tmp: string,
  probePath: string | undefined,
): Promise<VariantResult> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const configPath = join(tmp, `${variant}.yaml`);
  const dataDir = join(tmp, `pglite-${variant}`);
  writeFileSync(configPath, gatewayConfig(src, port, fakePort, dataDir));
  const { env, node } = VARIANTS[variant]!;
  const gateway = spawnTracked(
    `sluice (${variant})`,
    [
      ...node,
      '--expose-gc',
      '--import',
      join(ROOT, 'bench', 'memory-probe.ts'),
      join(src, 'src', 'main.ts'),
      '--config',
      configPath,
    ],
    // Under another allocator glibc's figures would be empty: not asked for.
    { ...env, ...(probePath && !('LD_PRELOAD' in env) ? { SLUICE_MALLOC_PROBE: probePath } : {}) },
    true,
  );
  const ask = prober(gateway.child);
  try {
    await waitReady(gateway, `${origin}/healthz`, 60_000);
    const t0 = performance.now();
    const samples: Sample[] = [];
    let phase: Sample['phase'] = 'baseline';
    let burst = 0;
    let peakRss = 0;
    const record = (s: ProbeSample, as: Sample['phase'] = phase): Sample => {
      const proc = procMemory(gateway.pid);
      peakRss = Math.max(peakRss, proc.hwm);
      let v8Physical = 0;
      for (const space of Object.values(s.spaces)) v8Physical += space.physical;
      const row: Sample = {
        t: Math.round((performance.now() - t0) / 100) / 10,
        phase: as,
        burst,
        fds: readdirSync(`/proc/${gateway.pid}/fd`).length,
        rss: proc.rss,
        rssAnon: proc.rssAnon,
        rssFile: proc.rssFile,
        heapTotal: s.heapTotal,
        heapUsed: s.heapUsed,
        external: s.external,
        arrayBuffers: s.arrayBuffers,
        v8Malloced: s.v8Malloced,
        v8Physical,
        spaces: s.spaces,
        malloc: s.malloc,
      };
      samples.push(row);
      return row;
    };
    // One sample a second while the phases below run; bounded by the phases' own length.
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        record(await ask('sample'));
        await sleep(1000);
      }
    })();

    await sleep(3000);
    record(await ask('gc'), 'gc');
    await sleep(1000);
    const clients: ClientResult[] = [];
    const endedAt: number[] = [];
    for (burst = 1; burst <= BURSTS; burst++) {
      phase = 'load';
      clients.push(...(await runClients(origin)));
      endedAt.push((performance.now() - t0) / 1000);
      phase = 'after';
      await sleep(OBSERVE_S * 1000);
    }
    burst = BURSTS;
    const metricsAfter = await scrapeMetrics(origin);
    sampling = false;
    await sampler;
    const maps: Record<string, MapsSummary> = { [`+${OBSERVE_S} s`]: mapsSummary(gateway.pid) };
    record(await ask('gc'), 'gc');
    await sleep(2000);
    record(await ask('sample'), 'gc');
    maps['after two full GCs'] = mapsSummary(gateway.pid);
    record(await ask('gc-reduce'), 'reduce');
    await sleep(2000);
    record(await ask('sample'), 'reduce');
    maps['after a memory-reducing GC'] = mapsSummary(gateway.pid);
    if (probePath && !('LD_PRELOAD' in env)) {
      record(await ask('trim'), 'trim');
      maps['after malloc_trim'] = mapsSummary(gateway.pid);
    }
    let heap: string | undefined;
    if (values.snapshot) {
      const file = join(tmp, `${variant}.heapsnapshot`);
      await ask('snapshot', file);
      heap = heapSummaryMarkdown(summarizeHeap(readFileSync(file, 'utf8'), 20));
      rmSync(file, { force: true });
    }
    const outcomes: Record<string, number> = {};
    for (const c of clients) {
      for (const [k, n] of Object.entries(c.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + n;
    }
    return {
      variant,
      env,
      node,
      streams: {
        ok: clients.reduce((n, c) => n + c.ok, 0),
        bad: clients.reduce((n, c) => n + c.bad, 0),
        outcomes,
        retries: clients.reduce((n, c) => n + c.retries, 0),
        peakOpen: clients.reduce((n, c) => n + c.peakOpen, 0),
      },
      samples,
      endedAt,
      peakRss,
      metricsAfter,
      maps,
      heap,
    };
  } finally {
    await stop(gateway);
  }
}

const MiB = (n: number | undefined) => (n === undefined ? '-' : (n / 1048576).toFixed(0));

function report(r: VariantResult): string {
  const s = r.samples;
  const at = (phase: Sample['phase'], pick: (x: Sample[]) => Sample | undefined) =>
    pick(s.filter((x) => x.phase === phase));
  const gcs = s.filter((x) => x.phase === 'gc');
  const reduces = s.filter((x) => x.phase === 'reduce');
  const rows: Array<[string, Sample | undefined]> = [
    // The last idle sample taken before the first GC (samples are in time order).
    [
      'idle, before load',
      s.slice(0, Math.max(0, s.indexOf(gcs[0]!))).findLast((x) => x.phase === 'baseline'),
    ],
    ['idle, after a full GC', gcs[0]],
  ];
  const released: string[] = [];
  for (let b = 1; b <= r.endedAt.length; b++) {
    const ended = r.endedAt[b - 1]!;
    const after = s.filter((x) => x.phase === 'after' && x.burst === b);
    const afterAt = (sec: number) => after.find((x) => x.t >= ended + sec) ?? after[after.length - 1];
    const peak = s
      .filter((x) => x.phase === 'load' && x.burst === b)
      .reduce<Sample | undefined>((m, x) => (m === undefined || x.rss > m.rss ? x : m), undefined);
    const tag = r.endedAt.length > 1 ? `burst ${b}: ` : '';
    rows.push([`${tag}peak RSS sample during the streams`, peak], [`${tag}streams ended +1 s`, afterAt(1)]);
    for (const sec of [5, 10, 20]) if (sec < OBSERVE_S - 1) rows.push([`+${sec} s`, afterAt(sec)]);
    rows.push([`+${OBSERVE_S} s`, afterAt(OBSERVE_S - 1)]);
    // The first second in which RSS fell by a tenth or more: V8 (or the allocator) giving back.
    const fall = after.findIndex((x, i) => i > 0 && x.rss < after[i - 1]!.rss * 0.9);
    if (fall > 0) {
      const x = after[fall]!;
      released.push(
        `${tag}RSS fell from ${MiB(after[fall - 1]!.rss)} to ${MiB(x.rss)} MiB ${Math.round(x.t - ended)} s ` +
          `after the streams ended (V8 heapTotal ${MiB(after[fall - 1]!.heapTotal)} -> ${MiB(x.heapTotal)} MiB).`,
      );
    } else released.push(`${tag}RSS did not fall by a tenth in any second of the ${OBSERVE_S} s observed.`);
  }
  rows.push(
    ['then a full GC (x2)', gcs[1]],
    ['2 s later', gcs[2]],
    ['then a memory-reducing GC', reduces[0]],
    ['2 s later', reduces[1]],
    ['then malloc_trim(0)', at('trim', (x) => x[0])],
  );
  const env = [...Object.entries(r.env).map(([k, v]) => `${k}=${v}`), ...r.node].join(' ') || '(defaults)';
  const maxFds = s.reduce((m, x) => Math.max(m, x.fds), 0);
  const lines = [
    `### ${r.variant}: ${env}`,
    '',
    `${r.streams.ok} of ${STREAMS * r.endedAt.length} streams complete (outcomes ${JSON.stringify(r.streams.outcomes)}, ` +
      `${r.streams.retries} connects retried); ` +
      `peak RSS (VmHWM) ${MiB(r.peakRss)} MiB; most open fds in the gateway ${maxFds} (two per open stream).`,
    '',
    '| moment | fds | RSS | RssAnon | V8 heapTotal | V8 resident | V8 heapUsed | V8 malloced | external | arrayBuffers | malloc arena+mmap | malloc in use | malloc free | arenas |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const [label, x] of rows) {
    if (!x) continue;
    const m = x.malloc;
    lines.push(
      `| ${label} (t=${x.t} s) | ${x.fds} | ${MiB(x.rss)} | ${MiB(x.rssAnon)} | ${MiB(x.heapTotal)} | ${MiB(x.v8Physical)} | ${MiB(x.heapUsed)} | ${MiB(x.v8Malloced)} | ` +
        `${MiB(x.external)} | ${MiB(x.arrayBuffers)} | ${m ? MiB(m.arena + m.hblkhd) : '-'} | ` +
        `${m ? MiB(m.uordblks + m.hblkhd) : '-'} | ${m ? MiB(m.fordblks) : '-'} | ${m?.arenas ?? '-'} |`,
    );
  }
  lines.push(
    '',
    ...released,
    '',
    `/metrics ${OBSERVE_S} s after: ${r.metricsAfter.join('; ') || '(none)'}`,
    '',
  );
  const last = reduces[reduces.length - 1] ?? gcs[gcs.length - 1];
  if (last) {
    const spaces = Object.entries(last.spaces)
      .filter(([, v]) => v.size >= 1048576)
      .map(([k, v]) => `${k} ${MiB(v.size)} (used ${MiB(v.used)})`);
    lines.push(`V8 spaces after the last GC, MiB committed: ${spaces.join(', ')}.`, '');
  }
  for (const [moment, m] of Object.entries(r.maps)) {
    const top = m.topAnon.map(([size, rss]) => `${MiB(rss)}/${MiB(size)}`).join(', ');
    lines.push(
      `Resident by mapping ${moment}: brk heap ${MiB(m.brkHeap)} MiB, anonymous ${MiB(m.anon)} MiB ` +
        `(largest, resident/size MiB: ${top}), files ${MiB(m.file)} MiB.`,
    );
  }
  if (r.heap) lines.push('', 'Heap snapshot after the GCs:', '', r.heap);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const hardTimer = setTimeout(() => {
    process.stderr.write(`stream-memory: hard timeout of ${TIMEOUT_S} s reached; killing everything\n`);
    killAllSync();
    process.exit(1);
  }, TIMEOUT_S * 1000);
  const fds = openFilesLimit();
  // Two sockets per stream in the gateway (client side, provider side), plus its own files.
  if (STREAMS * 2 + 300 > fds)
    throw new Error(`--streams ${STREAMS} needs ${STREAMS * 2 + 300} fds; ulimit -n is ${fds}`);
  for (const v of VARIANT_NAMES) {
    const preload = VARIANTS[v]!.env.LD_PRELOAD;
    if (preload !== undefined && !existsSync(preload)) throw new Error(`${v}: no ${preload}`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'sluice-stream-memory-'));
  process.once('exit', () => {
    killAllSync();
    rmSync(tmp, { recursive: true, force: true });
  });
  process.once('SIGINT', () => process.exit(130));
  const probePath = buildMallocProbe(tmp);
  const { dir: src, source } = sluiceSource(values.ref, tmp);
  const fakePort = await freePort();
  const fake = spawnTracked(
    'fake provider',
    [
      join(ROOT, 'src', 'fake-provider', 'main.ts'),
      '--port',
      String(fakePort),
      '--chunks',
      String(CHUNKS),
      '--chunk-gap-ms',
      String(GAP_MS),
    ],
    {},
    false,
  );
  const results: VariantResult[] = [];
  try {
    await waitReady(fake, `http://127.0.0.1:${fakePort}/v1/models`);
    for (const variant of VARIANT_NAMES) {
      process.stderr.write(`stream-memory: ${variant}...\n`);
      const r = await runVariant(src, variant, fakePort, tmp, probePath);
      results.push(r);
      process.stdout.write(`${report(r)}\n\n`);
    }
  } finally {
    await stop(fake);
    clearTimeout(hardTimer);
  }
  const head = [
    `## Memory after ${STREAMS} slow streams`,
    '',
    `Sluice: ${source}; node ${process.version}; ${STREAMS} streams from ${CLIENTS} client processes over ${RAMP_MS} ms, ` +
      `${CHUNKS} chunks ${GAP_MS} ms apart; request log ${values['request-log']}; ${BURSTS} burst(s), each observed ${OBSERVE_S} s.`,
    '',
  ].join('\n');
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'stream-memory.md'), `${head}\n${results.map(report).join('\n\n')}\n`);
  writeFileSync(join(dir, 'stream-memory.json'), JSON.stringify({ args: values, results }, null, 1));
}

runBench(main);
