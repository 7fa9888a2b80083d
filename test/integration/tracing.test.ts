/**
 * OpenTelemetry tracing through the gateway, exported over OTLP/HTTP to a collector stand-in on
 * loopback: a server span per request under the client's traceparent, a client span per upstream
 * attempt, the attempt's traceparent sent to the provider, and the same trace id in the log line.
 * With tracing off, the client's traceparent still reaches the provider and the log.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.ts';
import { createTracing } from '../../src/telemetry/tracing.ts';
import { baseConfig, behaviourProviders, chatBody, startHarness } from '../helpers/harness.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  status?: { code?: number };
}

/** An OTLP/HTTP JSON receiver: every span it was sent. */
async function startCollector() {
  const spans: OtlpSpan[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    const body = JSON.parse(text) as {
      resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
    };
    for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return { spans, url: `http://127.0.0.1:${port}/v1/traces`, close: () => server.close() };
}

const attr = (span: OtlpSpan, key: string) => {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v && (v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue);
};

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

test('a span per request under the client traceparent, one per attempt, traceparent to the provider', async (t) => {
  const collector = await startCollector();
  t.after(() => collector.close());
  const config = validateConfig(
    { ...baseConfigStub(), tracing: { endpoint: collector.url, serviceName: 'sluice-test' } },
    {},
  );
  const tracing = createTracing(config.tracing, 'test-instance');
  t.after(() => tracing.shutdown());
  const h = await startHarness({
    tracing,
    config: (fake) => ({
      ...baseConfig(fake),
      providers: {
        ...(baseConfig(fake).providers as object),
        ...behaviourProviders(fake, { flaky: 'fail-first=1,tag=flaky' }),
      },
      models: { 'test-model': { deployments: [{ provider: 'flaky' }] } },
    }),
  });
  t.after(() => h.close());

  const r = await fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: h.headers({ traceparent: `00-${TRACE}-${PARENT}-01` }),
    body: chatBody(),
  });
  assert.equal(r.status, 200);
  await r.arrayBuffer();
  assert.equal(r.headers.get('x-sluice-attempts'), '2');
  await tracing.flush();

  const server = collector.spans.find((s) => s.kind === 2);
  assert.ok(server, 'a server span');
  assert.equal(server.traceId, TRACE);
  assert.equal(server.parentSpanId, PARENT);
  assert.equal(server.name, 'POST /v1/chat/completions');
  assert.equal(attr(server, 'sluice.tenant'), 'acme');
  assert.equal(attr(server, 'sluice.model'), 'test-model');
  assert.equal(Number(attr(server, 'http.response.status_code')), 200);
  assert.equal(Number(attr(server, 'sluice.attempts')), 2);

  const attempts = collector.spans.filter((s) => s.kind === 3);
  assert.equal(attempts.length, 2);
  for (const a of attempts) {
    assert.equal(a.traceId, TRACE);
    assert.equal(a.parentSpanId, server.spanId);
    assert.equal(attr(a, 'sluice.deployment'), 'flaky/test-model@local');
  }
  assert.deepEqual(attempts.map((a) => attr(a, 'sluice.outcome')).sort(), ['ok', 'upstream_error']);
  const ok = attempts.find((a) => attr(a, 'sluice.outcome') === 'ok')!;
  // The provider got the answering attempt's span as its parent.
  assert.equal(h.fake.stats.lastRequest?.headers.traceparent, `00-${TRACE}-${ok.spanId}-01`);
  // The log line carries the same trace id.
  const line = h.logs.find((l) => l.msg === 'request' && l.route === '/v1/chat/completions');
  assert.equal(line?.traceId, TRACE);

  // Without a traceparent: a new trace, the same id in the span and the log line.
  const before = collector.spans.length;
  const r2 = await fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: h.headers(),
    body: chatBody(),
  });
  await r2.arrayBuffer();
  await tracing.flush();
  const fresh = collector.spans.slice(before).find((s) => s.kind === 2)!;
  assert.notEqual(fresh.traceId, TRACE);
  assert.equal(fresh.parentSpanId ?? '', '');
  const line2 = h.logs.filter((l) => l.msg === 'request' && l.route === '/v1/chat/completions').at(-1);
  assert.equal(line2?.traceId, fresh.traceId);
});

test('tracing off: the client traceparent goes to the provider unchanged and into the log line', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const traceparent = `00-${TRACE}-${PARENT}-01`;
  const r = await fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: h.headers({ traceparent }),
    body: chatBody(),
  });
  await r.arrayBuffer();
  assert.equal(h.fake.stats.lastRequest?.headers.traceparent, traceparent);
  assert.equal(h.logs.find((l) => l.msg === 'request')?.traceId, TRACE);
  // A malformed one is not forwarded.
  await (
    await fetch(`${h.baseURL}/chat/completions`, {
      method: 'POST',
      headers: h.headers({ traceparent: 'garbage' }),
      body: chatBody(),
    })
  ).arrayBuffer();
  assert.equal(h.fake.stats.lastRequest?.headers.traceparent, undefined);
});

function baseConfigStub(): Record<string, unknown> {
  return {
    providers: { p: { kind: 'fake' } },
    models: { m: { deployments: [{ provider: 'p' }] } },
    tenants: { t: { keys: [`sha256:${'0'.repeat(64)}`] } },
  };
}
