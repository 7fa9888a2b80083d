/**
 * server.metricsPort: /metrics is served on its own port, and no longer on the API's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startMetricsServer } from '../../src/telemetry/metrics-server.ts';
import { baseConfig, chatBody, startHarness } from '../helpers/harness.ts';

test('with server.metricsPort, /metrics moves to its own port', async (t) => {
  const h = await startHarness({ config: (fake) => ({ ...baseConfig(fake), server: { metricsPort: 0 } }) });
  t.after(() => h.close());
  const metrics = await startMetricsServer(h.gateway.metrics.registry, '127.0.0.1', 0);
  t.after(() => metrics.close());
  const r = await fetch(`${h.baseURL}/chat/completions`, {
    method: 'POST',
    headers: h.headers(),
    body: chatBody(),
  });
  await r.arrayBuffer();

  const onApi = await fetch(`${h.url}/metrics`);
  assert.equal(onApi.status, 404);
  await onApi.arrayBuffer();
  const scraped = await fetch(metrics.url);
  assert.equal(scraped.status, 200);
  assert.match(String(scraped.headers.get('content-type')), /text\/plain/);
  assert.match(
    await scraped.text(),
    /sluice_requests_total\{route="\/v1\/chat\/completions",model="test-model",status="200",code=""\} 1/,
  );
  const other = await fetch(metrics.url.replace('/metrics', '/v1/models'));
  assert.equal(other.status, 404);
  await other.arrayBuffer();
});
