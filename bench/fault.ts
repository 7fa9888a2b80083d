// Fault scenario for the resilience layer (`npm run bench` runs it after the core benchmark):
// a model with two deployments, one dead (connection refused) and one failing 10% of its
// requests with 503. Reports the success rate clients see and the upstream attempts per client
// request. Targets: >= 99.9% success, <= 1.3 attempts per request. Loopback only; bounded in
// request count and time. BENCH_DURATION_S scales the request count and the time limit (bench/duration.ts):
// 6,000 requests and 36 s at BENCH_DURATION_S=3.
//
//   node bench/fault.ts [--requests 20000] [--concurrency 50] [--time-limit-s 120]
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { hashKey } from '../src/auth/keys.ts';
import { startFakeProvider } from '../src/fake-provider/server.ts';
import { scaled } from './duration.ts';
import { inProcessGateway } from './gateway.ts';
import { runBench } from './procs.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: String(scaled(20_000)) },
    concurrency: { type: 'string', default: '50' },
    'time-limit-s': { type: 'string', default: String(scaled(120)) },
  },
});
const TOTAL = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);
const DEADLINE = Date.now() + Number(values['time-limit-s']) * 1000;
const KEY = 'sk-bench-fault';

async function closedPort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  const { port } = probe.address() as { port: number };
  await new Promise((r) => probe.close(r));
  return port;
}

async function main(): Promise<void> {
  const fake = await startFakeProvider({ port: 0 });
  const deadPort = await closedPort();
  // Product defaults for retry and breaker settings: this measures what users get.
  const { gateway, url } = await inProcessGateway(
    {
      logging: { level: 'warn' },
      providers: {
        live: {
          kind: 'openai',
          baseUrl: `${fake.origin}/fake/fail-rate=0.1,fail-status=503,tag=live/v1`,
          region: 'a',
        },
        dead: { kind: 'openai', baseUrl: `http://127.0.0.1:${deadPort}/v1`, region: 'b' },
      },
      models: { 'fault-model': { deployments: [{ provider: 'live' }, { provider: 'dead' }] } },
      tenants: { bench: { keys: [hashKey(KEY)] } },
    },
    'warn',
  );
  const agent = new Agent({ connections: CONCURRENCY });
  const body = JSON.stringify({ model: 'fault-model', messages: [{ role: 'user', content: 'hello' }] });
  const statuses = new Map<number, number>();
  let sent = 0;
  let attempts = 0;
  let answered = 0;
  const started = performance.now();

  async function worker(): Promise<void> {
    while (sent < TOTAL && Date.now() < DEADLINE) {
      sent++;
      try {
        const res = await request(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
          body,
          dispatcher: agent,
        });
        const text = await res.body.text();
        if (res.statusCode !== 200 && process.env.BENCH_FAULT_DEBUG) {
          process.stderr.write(
            `${sent} ${res.headers['x-sluice-attempts']} ${res.headers['x-sluice-deployment']} ${text}\n`,
          );
        }
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        attempts += Number(res.headers['x-sluice-attempts'] ?? 0);
      } catch {
        statuses.set(0, (statuses.get(0) ?? 0) + 1);
      }
      answered++;
    }
  }
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    await agent.close();
    await gateway.shutdown(1_000);
    await fake.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const ok = statuses.get(200) ?? 0;
  const success = ok / answered;
  const perRequest = attempts / answered;
  const liveCalls = fake.stats.byBehaviour.live ?? 0;
  const lines = [
    '## Fault scenario: 10% 503s on the live deployment, the other deployment dead',
    '',
    `Command: \`node bench/fault.ts --requests ${TOTAL} --concurrency ${CONCURRENCY}\` · product retry/breaker defaults`,
    '',
    '| requests | seconds | success | attempts / request | live-deployment calls / request | statuses |',
    '|---:|---:|---:|---:|---:|---|',
    `| ${answered} | ${seconds.toFixed(1)} | ${(success * 100).toFixed(3)}% | ${perRequest.toFixed(3)} | ${(liveCalls / answered).toFixed(3)} | ${[...statuses].map(([s, n]) => `${s}: ${n}`).join(', ')} |`,
    '',
    '| target | goal | measured | result |',
    '|---|---|---|---|',
    `| success seen by clients | >= 99.9% | ${(success * 100).toFixed(3)}% | ${success >= 0.999 ? 'PASS' : 'MISS'} |`,
    `| upstream attempts per client request | <= 1.3 | ${perRequest.toFixed(3)} | ${perRequest <= 1.3 ? 'PASS' : 'MISS'} |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

runBench(main);
