// Admission-queue burst scenario (`npm run bench` runs it after the limiter bench): a model capped
// at 8 concurrent upstream calls against a 50 ms upstream, hit by 20x the cap (160 clients in a
// closed loop, each request with a 1 s deadline) for 10 s. Reports the upstream's peak concurrency,
// the queue wait of admitted requests (p50/p99/max, from the access log), and the share refused by
// reason. Targets: upstream never above the cap; no admitted request waited past its deadline.
// Loopback only; bounded in time. BENCH_DURATION_S sets the default --seconds (bench/duration.ts).
//
//   node bench/queue.ts [--cap 8] [--clients 160] [--seconds 10] [--deadline-ms 1000]
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { hashKey } from '../src/auth/keys.ts';
import { startFakeProvider } from '../src/fake-provider/server.ts';
import { scaled } from './duration.ts';
import { inProcessGateway } from './gateway.ts';
import { runBench } from './procs.ts';

const { values } = parseArgs({
  options: {
    cap: { type: 'string', default: '8' },
    clients: { type: 'string', default: '160' },
    seconds: { type: 'string', default: String(scaled(10)) },
    'deadline-ms': { type: 'string', default: '1000' },
  },
});
const CAP = Number(values.cap);
const CLIENTS = Number(values.clients);
const SECONDS = Number(values.seconds);
const DEADLINE_MS = Number(values['deadline-ms']);
const KEY = 'sk-bench-queue';

async function main(): Promise<void> {
  const fake = await startFakeProvider({ port: 0 });
  // The access log, parsed for each admitted request's queue wait; nothing printed.
  const waits: number[] = [];
  const { gateway, url } = await inProcessGateway(
    {
      logging: { level: 'info' },
      providers: {
        slow: {
          kind: 'openai',
          baseUrl: `${fake.origin}/fake/headers-delay-ms=50,tag=slow/v1`,
          connections: CAP,
        },
      },
      models: { 'burst-model': { deployments: [{ provider: 'slow' }], queue: { maxConcurrent: CAP } } },
      tenants: { bench: { keys: [hashKey(KEY)] } },
      limits: { worker: { enabled: false } },
    },
    'info',
    (line) => {
      if (!line.includes('"msg":"request"')) return;
      const entry = JSON.parse(line) as { status?: number; queueWaitMs?: number };
      if (entry.status === 200 && entry.queueWaitMs !== undefined) waits.push(entry.queueWaitMs);
    },
  );
  const agent = new Agent({ connections: CLIENTS });
  const body = JSON.stringify({ model: 'burst-model', messages: [{ role: 'user', content: 'hello' }] });
  const codes = new Map<string, number>();
  const end = Date.now() + SECONDS * 1000;
  let sent = 0;
  const worker = async () => {
    while (Date.now() < end) {
      sent++;
      try {
        const res = await request(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${KEY}`,
            'content-type': 'application/json',
            'x-sluice-timeout-ms': String(DEADLINE_MS),
          },
          body,
          dispatcher: agent,
        });
        const text = await res.body.text();
        const code =
          res.statusCode === 200
            ? '200'
            : `${res.statusCode} ${(JSON.parse(text) as { error: { code: string } }).error.code}`;
        codes.set(code, (codes.get(code) ?? 0) + 1);
        // A refused client waits what retry-after says, as a well-behaved SDK would (capped at 1 s).
        if (res.statusCode !== 200) {
          const after = Math.min(1, Number(res.headers['retry-after'] ?? 1));
          await new Promise((r) => setTimeout(r, after * 1000 * Math.random()));
        }
      } catch {
        codes.set('error', (codes.get('error') ?? 0) + 1);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: CLIENTS }, worker));
  } finally {
    await agent.close();
    await gateway.shutdown(2_000);
    await fake.close();
  }
  waits.sort((a, b) => a - b);
  const q = (p: number) => waits[Math.min(waits.length - 1, Math.floor(p * waits.length))] ?? 0;
  const ok = codes.get('200') ?? 0;
  const refused = sent - ok;
  const peak = fake.stats.maxInFlight;
  const maxWait = waits.at(-1) ?? 0;
  const lines = [
    `## Admission queue burst: ${CLIENTS} clients (${CLIENTS / CAP}x the cap of ${CAP}) for ${SECONDS} s, 50 ms upstream`,
    '',
    `Command: \`node bench/queue.ts --cap ${CAP} --clients ${CLIENTS} --seconds ${SECONDS} --deadline-ms ${DEADLINE_MS}\` · each request's deadline ${DEADLINE_MS} ms; refused clients back off a random share of retry-after (at most 1 s)`,
    '',
    '| requests | admitted | refused | upstream peak concurrency | queue wait p50 ms | p99 ms | max ms | answers |',
    '|---:|---:|---:|---:|---:|---:|---:|---|',
    `| ${sent} | ${ok} | ${((refused / sent) * 100).toFixed(1)}% | ${peak} | ${q(0.5).toFixed(1)} | ${q(0.99).toFixed(1)} | ${maxWait.toFixed(1)} | ${[...codes].map(([c, n]) => `${c}: ${n}`).join(', ')} |`,
    '',
    '| target | goal | measured | result |',
    '|---|---|---|---|',
    `| upstream concurrency | <= cap (${CAP}) | ${peak} | ${peak <= CAP ? 'PASS' : 'MISS'} |`,
    `| admitted requests' queue wait | <= deadline (${DEADLINE_MS} ms) | max ${maxWait.toFixed(1)} ms | ${maxWait <= DEADLINE_MS ? 'PASS' : 'MISS'} |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

runBench(main);
