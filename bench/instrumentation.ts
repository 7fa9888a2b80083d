// Instrumentation cost (`npm run bench` runs it last): Sluice pinned to core 1 with its metrics and
// per-request access log on (as shipped) and off (no-op metric objects, logging silent), the fake
// provider and a fresh load generator on core 0; throughput at c=50 (closed loop) and CPU per
// request, 5 alternating rounds, medians. Target: throughput with instrumentation within 10% of
// without. Loopback only, bounded in time. BENCH_DURATION_S scales --seconds, --rounds and the
// 2 s warm-up (bench/duration.ts): 3 s x 2 rounds, 1 s warm-up at BENCH_DURATION_S=3.
//
//   node bench/instrumentation.ts [--seconds 10] [--rounds 5]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { scaled, scaledRounds, scaledWarmup } from './duration.ts';
import { runPhase } from './phase.ts';
import { freePort, pinSelf, runBench, stop } from './procs.ts';
import { CHAT_BODY, PROVIDER_CORE, PROXY_CORE, sluiceConfig, startFake, withPinnedSluice } from './setup.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: String(scaled(10)) },
    rounds: { type: 'string', default: String(scaledRounds(5)) },
    /** Also no-logs (metrics only), no-metrics (access log only) and no-default (without
     * prom-client's default process metrics), to split the cost. */
    modes: { type: 'string', default: 'on,off' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const WARMUP_S = scaledWarmup(2);
const MODES = values.modes.split(',') as Mode[];
type Mode = 'on' | 'off' | 'no-logs' | 'no-metrics' | 'no-default';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  pinSelf(PROVIDER_CORE);
  const upstream = await startFake(PROVIDER_CORE);
  const tmp = mkdtempSync(join(tmpdir(), 'sluice-bench-instr-'));
  const runs = Object.fromEntries(
    MODES.map((m) => [m, [] as Array<{ rps: number; cpuUs: number }>]),
  ) as Record<Mode, Array<{ rps: number; cpuUs: number }>>;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of MODES) {
        const port = await freePort();
        const file = join(tmp, `${mode}.yaml`);
        writeFileSync(file, sluiceConfig(port, upstream.port));
        const args = ['bench/instrumentation-target.ts', '--config', file, '--mode', mode];
        const rps = await withPinnedSluice(args, port, upstream.proc.pid, (target) =>
          runPhase(
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
          ),
        );
        runs[mode].push({ rps: rps.rpsMedian, cpuUs: rps.cpuUsPerReqMedian });
        process.stderr.write(
          `[instrumentation] ${mode}: ${rps.rpsMedian.toFixed(0)} req/s, ${rps.cpuUsPerReqMedian.toFixed(1)} CPU us/req\n`,
        );
      }
    }
  } finally {
    await stop(upstream.proc);
    rmSync(tmp, { recursive: true, force: true });
  }
  const summary = (m: Mode) => ({
    rps: median(runs[m].map((r) => r.rps)),
    cpuUs: median(runs[m].map((r) => r.cpuUs)),
  });
  const diff =
    runs.on?.length && runs.off?.length
      ? (summary('on').rps - summary('off').rps) / summary('off').rps
      : undefined;
  const lines = [
    '## Instrumentation cost: metrics and access log on vs off',
    '',
    `Command: \`node bench/instrumentation.ts --seconds ${SECONDS} --rounds ${ROUNDS}\` · Sluice pinned to core ${PROXY_CORE}, fake provider and load generator on core ${PROVIDER_CORE}, c=50 closed loop, ${ROUNDS} alternating rounds, medians`,
    '',
    '| instrumentation | req/s (runs) | median req/s | CPU µs/req (median) |',
    '|---|---|---:|---:|',
    ...MODES.map(
      (m) =>
        `| ${m} | ${runs[m].map((r) => r.rps.toFixed(0)).join(' / ')} | ${summary(m).rps.toFixed(0)} | ${summary(m).cpuUs.toFixed(1)} |`,
    ),
  ];
  if (diff !== undefined) {
    lines.push(
      '',
      '| target | goal | measured | result |',
      '|---|---|---|---|',
      `| throughput with metrics + logs on vs off | within 10% | ${(diff * 100).toFixed(1)}% | ${Math.abs(diff) <= 0.1 ? 'PASS' : 'MISS'} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

runBench(main);
