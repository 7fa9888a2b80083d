// Profiles one proxy under one workload: the fake provider on core 0, the proxy on core 1 with
// `node --cpu-prof`, the load from a fresh generator process on core 0 (as in the bench), then a
// graceful stop so the profile is written, and a summary of where the proxy's CPU time went.
//
//   node bench/profile.ts [--target sluice|bare] [--workload rps|streams|openloop] [--duration 10]
//                         [--dir /tmp/prof] [--ref GIT_REF]
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runPhase } from './phase.ts';
import { killAllSync, type Proc, pinSelf, stop } from './procs.ts';
import { summarizeProfile, summaryMarkdown } from './profile-summary.ts';
import {
  CHAT_BODY,
  CONNECTIONS,
  HEADERS,
  PROVIDER_CORE,
  PROXY_CORE,
  RATE,
  STREAM_BODY,
  STREAMS,
  sluiceSource,
  startBare,
  startFake,
  startSluice,
} from './setup.ts';

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: 'sluice' },
    workload: { type: 'string', default: 'rps' },
    duration: { type: 'string', default: '10' },
    dir: { type: 'string', default: '/tmp/prof' },
    ref: { type: 'string' },
    top: { type: 'string', default: '30' },
  },
});
const durationS = Number(values.duration);
if (
  !['sluice', 'bare'].includes(values.target) ||
  !['rps', 'streams', 'openloop'].includes(values.workload)
) {
  process.stderr.write(
    'usage: node bench/profile.ts [--target sluice|bare] [--workload rps|streams|openloop]\n',
  );
  process.exit(2);
}
if (!Number.isFinite(durationS) || durationS < 1 || durationS > 120) throw new Error('--duration 1..120');

const tmp = mkdtempSync(join(tmpdir(), 'sluice-profile-'));
const cleanup = () => {
  killAllSync();
  rmSync(tmp, { recursive: true, force: true });
};
process.once('SIGINT', () => {
  cleanup();
  process.exit(130);
});
process.once('exit', cleanup);

async function main(): Promise<void> {
  pinSelf(PROVIDER_CORE);
  mkdirSync(values.dir, { recursive: true });
  let fake: Proc | undefined;
  let proxy: Proc | undefined;
  try {
    const f = await startFake(PROVIDER_CORE);
    fake = f.proc;
    const profArgs = ['--cpu-prof', '--cpu-prof-dir', values.dir];
    const started =
      values.target === 'bare'
        ? await startBare(PROXY_CORE, f.origin, profArgs)
        : await startSluice(PROXY_CORE, sluiceSource(values.ref, tmp).dir, tmp, f.port, profArgs);
    proxy = started.proc;
    const pid = proxy.pid;
    const target = {
      url: `${started.origin}/v1/chat/completions`,
      headers: HEADERS,
      procPid: pid,
      fakePid: fake.pid,
    };
    const limitMs = (durationS + 90) * 1000;
    process.stdout.write(
      `profiling ${values.target} (pid ${pid}) under ${values.workload} for ${durationS} s\n`,
    );
    if (values.workload === 'rps') {
      const r = await runPhase(
        { ...target, kind: 'rps', body: CHAT_BODY, connections: CONNECTIONS, warmupS: 3, durationS },
        PROVIDER_CORE,
        limitMs,
      );
      process.stdout.write(`${r.rpsMedian.toFixed(0)} req/s, ${r.cpuUsPerReqMedian.toFixed(1)} CPU us/req\n`);
    } else if (values.workload === 'openloop') {
      const r = await runPhase(
        { ...target, kind: 'openLoop', body: CHAT_BODY, rate: RATE, warmupS: 2, durationS },
        PROVIDER_CORE,
        limitMs,
      );
      process.stdout.write(`p50 ${r.latencyMs.p50.toFixed(3)} ms, p99 ${r.latencyMs.p99.toFixed(3)} ms\n`);
    } else {
      // About five seconds of streams per 1000 (200 concurrent, ~0.2 s each).
      const rounds = Math.max(1, Math.round(durationS * 5));
      const r = await runPhase(
        {
          ...target,
          kind: 'streams',
          body: STREAM_BODY,
          concurrency: STREAMS.concurrency,
          warmupRounds: 3,
          rounds,
          staggerMs: STREAMS.chunks * STREAMS.chunkGapMs,
          expectEvents: STREAMS.chunks + 1,
        },
        PROVIDER_CORE,
        limitMs,
      );
      process.stdout.write(`TTFT p50 ${r.ttftMs.p50.toFixed(3)} ms, ${r.ok}/${r.streams} streams ok\n`);
    }
    await stop(proxy, 30_000);
    proxy = undefined;
    const file = readdirSync(values.dir).find(
      (name) => name.includes(`.${pid}.`) && name.endsWith('.cpuprofile'),
    );
    if (!file) throw new Error(`no profile for pid ${pid} in ${values.dir}`);
    const path = join(values.dir, file);
    const md = summaryMarkdown(summarizeProfile(JSON.parse(readFileSync(path, 'utf8')), Number(values.top)));
    writeFileSync(`${path}.md`, `## ${values.target}, ${values.workload}, ${durationS} s: ${path}\n\n${md}`);
    process.stdout.write(`\n${path}\n\n${md}\n`);
  } finally {
    if (proxy) await stop(proxy);
    if (fake) await stop(fake);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`profile: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
