// Load-test scenarios with autocannon, against Sluice and its fake provider, on loopback only.
// Each starts the fake provider and a gateway in this process with the config the scenario needs
// (or, with --url, hits a running gateway on a loopback address), runs for --seconds, and prints a
// summary: throughput, latency, statuses, and what the gateway did (from its /metrics). The
// streaming scenario is driven by loadtest/stream-client.ts instead of autocannon, so that it can
// also report the TTFT and the gaps between chunks that its clients saw. --json prints each
// summary as one JSON line instead.
//
//   node loadtest/scenarios.ts <steady|burst|streaming|fault-storm|limit-storm|all> [--seconds 10] [--json]
//   node loadtest/scenarios.ts steady --url http://127.0.0.1:8080 --key sk-sluice-demo --model gpt-4o-mini
//
// The numbers are for comparing runs of a scenario; the benchmark (npm run bench, with the proxy
// pinned to its own core) is the reference for Sluice's speed.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { buildApp } from '../src/app.ts';
import { hashKey } from '../src/auth/keys.ts';
import { validateConfig } from '../src/config/load.ts';
import { startFakeProvider } from '../src/fake-provider/server.ts';
import { compileRuntime } from '../src/runtime.ts';
import { createLoggers } from '../src/telemetry/logger.ts';
import { streamLoad } from './stream-client.ts';

const KEY = 'sk-loadtest';

interface Scenario {
  /** What it shows. */
  about: string;
  connections: number;
  body: Record<string, unknown>;
  /** Extra config: providers (with the fake provider's origin), models, limits, queue. */
  config(origin: string): Record<string, unknown>;
  /** /metrics series worth printing after the run (prefixes). */
  report: string[];
  /** Streaming: load from the stream client, which times each chunk, rather than autocannon. */
  streams?: true;
}

const model = (provider: string, extra: Record<string, unknown> = {}) => ({
  deployments: [{ provider }],
  ...extra,
});

export const SCENARIOS: Record<string, Scenario> = {
  steady: {
    about: 'A steady closed loop of JSON chat completions against a healthy provider.',
    connections: 50,
    body: { model: 'm' },
    config: (origin) => ({
      providers: { up: { kind: 'openai', baseUrl: `${origin}/v1` } },
      models: { m: model('up') },
    }),
    report: ['sluice_upstream_connections'],
  },
  burst: {
    about:
      '400 connections at once on a model capped at 16 concurrent upstream calls (50 ms each): the admission queue holds the line, the rest is refused with 503 and retry-after.',
    connections: 400,
    body: { model: 'm' },
    config: (origin) => ({
      providers: {
        up: { kind: 'openai', baseUrl: `${origin}/fake/headers-delay-ms=50/v1`, connections: 16 },
      },
      models: { m: model('up', { queue: { maxConcurrent: 16, maxQueued: 128 } }) },
    }),
    report: ['sluice_queue_refusals_total', 'sluice_queue_wait_seconds_count'],
  },
  streaming: {
    about:
      '200 concurrent SSE streams of 20 chunks 10 ms apart, relayed chunk by chunk: TTFT and chunk gaps as the clients saw them.',
    connections: 200,
    body: { model: 'm', stream: true },
    config: (origin) => ({
      providers: {
        up: { kind: 'openai', baseUrl: `${origin}/fake/chunks=20,chunk-gap-ms=10/v1`, connections: 256 },
      },
      models: { m: model('up') },
    }),
    streams: true,
    report: [
      'sluice_ttft_seconds_count',
      'sluice_stream_chunk_gap_seconds_count',
      'sluice_streams_truncated_total',
    ],
  },
  'fault-storm': {
    about:
      'One deployment failing 60% of calls, one answering 503 always, a healthy fallback model: retries within budget, breakers open, fallbacks answer.',
    connections: 50,
    body: { model: 'm' },
    config: (origin) => ({
      providers: {
        flaky: { kind: 'openai', baseUrl: `${origin}/fake/fail-rate=0.6/v1` },
        down: { kind: 'openai', baseUrl: `${origin}/fake/status=503/v1` },
        spare: { kind: 'openai', baseUrl: `${origin}/v1` },
      },
      models: {
        m: { deployments: [{ provider: 'flaky' }, { provider: 'down' }], fallbacks: ['spare-model'] },
        'spare-model': model('spare'),
      },
    }),
    report: [
      'sluice_retries_total',
      'sluice_retry_budget_exhausted_total',
      'sluice_breaker_state',
      'sluice_fallbacks_total',
      'sluice_attempt_failures_total',
    ],
  },
  'limit-storm': {
    about:
      'A tenant limited to 50 requests/s and 20 in flight hammering with 100 connections: 429s with retry-after, nothing over the limit reaches the provider.',
    connections: 100,
    body: { model: 'm' },
    config: (origin) => ({
      providers: { up: { kind: 'openai', baseUrl: `${origin}/fake/headers-delay-ms=20/v1` } },
      models: { m: model('up') },
      limits: { tenants: { load: { requests: { limit: 50, per: 'second' }, concurrency: { max: 20 } } } },
    }),
    report: ['sluice_limiter_decisions_total'],
  },
};

export interface Summary {
  scenario: string;
  seconds: number;
  requests: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  statuses: Record<string, number>;
  errors: number;
  metrics: string[];
  /** The streaming scenario only, from the clients' side, in milliseconds. */
  streams?: {
    /** Streams answered 200 that ended with `data: [DONE]`. */
    complete: number;
    /** Request issued to the first chunk holding an SSE `data:` line. */
    ttftMs: { count: number; p50: number; p99: number; max: number };
    /** Between consecutive `data:` events of one stream, as they arrived. */
    chunkGapMs: { count: number; p50: number; p99: number; max: number };
  };
}

function loopbackOnly(url: string): void {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
    throw new Error(`load tests hit loopback addresses only; ${host} is not one`);
  }
}

async function metricsOf(url: string, scenario: Scenario): Promise<string[]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => scenario.report.some((prefix) => l.startsWith(prefix)) && !l.includes('_bucket'));
}

export async function runScenario(
  name: string,
  options: { seconds: number; url?: string; key?: string; model?: string },
): Promise<Summary> {
  const scenario = SCENARIOS[name];
  if (!scenario) throw new Error(`unknown scenario ${name}; one of ${Object.keys(SCENARIOS).join(', ')}`);
  let url = options.url;
  let close = async () => {};
  if (url === undefined) {
    const fake = await startFakeProvider({ host: '127.0.0.1', port: 0 });
    const origin = fake.baseUrl.replace(/\/v1$/, '');
    const config = validateConfig(
      {
        server: { host: '127.0.0.1', port: 0 },
        tenants: { load: { keys: [hashKey(KEY)] } },
        requestLog: { enabled: false },
        ...scenario.config(origin),
      },
      {},
    );
    const loggers = createLoggers('warn', { write: () => {} });
    const gateway = await buildApp(compileRuntime(config), {
      logger: loggers.log,
      accessLogger: loggers.access,
    });
    url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
    close = async () => {
      await gateway.shutdown(1_000);
      await fake.close();
    };
  }
  loopbackOnly(url);
  try {
    const body: Record<string, unknown> = {
      messages: [{ role: 'user', content: 'Hello from the load test' }],
      ...scenario.body,
    };
    if (options.model) body.model = options.model;
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${options.key ?? KEY}` };
    if (scenario.streams) {
      const r = await streamLoad({
        url: `${url}/v1/chat/completions`,
        headers,
        body: JSON.stringify(body),
        connections: scenario.connections,
        seconds: options.seconds,
        timeoutS: 30,
      });
      const pick = ({ count, p50, p99, max }: typeof r.ttftMs) => ({ count, p50, p99, max });
      return {
        scenario: name,
        seconds: r.seconds,
        requests: r.totalMs.count,
        rps: r.totalMs.count / r.seconds,
        latencyMs: { p50: r.totalMs.p50, p90: r.totalMs.p90, p99: r.totalMs.p99, max: r.totalMs.max },
        statuses: r.statuses,
        errors: r.errors,
        metrics: await metricsOf(url, scenario),
        streams: { complete: r.complete, ttftMs: pick(r.ttftMs), chunkGapMs: pick(r.gapMs) },
      };
    }
    const result = await autocannon({
      url: `${url}/v1/chat/completions`,
      method: 'POST',
      connections: scenario.connections,
      duration: options.seconds,
      timeout: 30,
      headers,
      body: JSON.stringify(body),
    });
    const statuses: Record<string, number> = {};
    for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = count;
    return {
      scenario: name,
      seconds: result.duration,
      requests: result.requests.total,
      rps: result.requests.total / result.duration,
      latencyMs: {
        p50: result.latency.p50,
        p90: result.latency.p90,
        p99: result.latency.p99,
        max: result.latency.max,
      },
      statuses,
      errors: result.errors + result.timeouts,
      metrics: await metricsOf(url, scenario),
    };
  } finally {
    await close();
  }
}

const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

export function formatSummary(s: Summary): string {
  const streams = s.streams
    ? [
        `streams complete ${s.streams.complete}; client-side ms: TTFT p50 ${ms(s.streams.ttftMs.p50)} p99 ${ms(s.streams.ttftMs.p99)} max ${ms(s.streams.ttftMs.max)}; chunk gap p50 ${ms(s.streams.chunkGapMs.p50)} p99 ${ms(s.streams.chunkGapMs.p99)} max ${ms(s.streams.chunkGapMs.max)} (${s.streams.chunkGapMs.count} gaps)`,
      ]
    : [];
  return [
    `== ${s.scenario}: ${SCENARIOS[s.scenario]!.about}`,
    `requests ${s.requests} in ${s.seconds.toFixed(1)} s = ${s.rps.toFixed(0)}/s; latency ms p50 ${ms(s.latencyMs.p50)} p90 ${ms(s.latencyMs.p90)} p99 ${ms(s.latencyMs.p99)} max ${ms(s.latencyMs.max)}`,
    `statuses ${Object.entries(s.statuses)
      .map(([code, n]) => `${code}: ${n}`)
      .join(', ')}; socket errors and timeouts ${s.errors}`,
    ...streams,
    ...s.metrics.map((m) => `  ${m}`),
  ].join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seconds: { type: 'string', default: '10' },
      url: { type: 'string' },
      key: { type: 'string' },
      model: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const seconds = Math.min(Math.max(Number(values.seconds), 1), 600);
  const names = positionals[0] === 'all' || positionals.length === 0 ? Object.keys(SCENARIOS) : positionals;
  for (const name of names) {
    const summary = await runScenario(name, {
      seconds,
      url: values.url,
      key: values.key,
      model: values.model,
    });
    process.stdout.write(values.json ? `${JSON.stringify(summary)}\n` : `${formatSummary(summary)}\n\n`);
  }
}
