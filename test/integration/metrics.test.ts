/**
 * The operator's metrics, end to end: TTFT and chunk gaps of a stream, upstream attempts per
 * provider, pool connections per origin, provider 429s, fallbacks, tokens and cost per tenant.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { baseConfig, behaviourProviders, chatBody, startHarness } from '../helpers/harness.ts';

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no series ${series}`);
  return Number(line.slice(series.length + 1));
}

test('stream timings, attempts per provider, pools, 429s, fallbacks, tokens and cost', async (t) => {
  const h = await startHarness({
    config: (fake) => ({
      ...baseConfig(fake),
      providers: {
        ...(baseConfig(fake).providers as object),
        ...behaviourProviders(fake, { limited: 'status=429,tag=limited', paced: 'chunks=5,chunk-gap-ms=40' }),
      },
      models: {
        'test-model': {
          deployments: [
            { provider: 'fake', pricing: { inputPerMillion: 500_000, outputPerMillion: 1_000_000 } },
          ],
        },
        'paced-model': { deployments: [{ provider: 'paced' }] },
        'limited-model': { deployments: [{ provider: 'limited' }], fallbacks: ['test-model'] },
      },
    }),
  });
  t.after(() => h.close());
  const send = async (body: string) => {
    const r = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers: h.headers(), body });
    await r.arrayBuffer();
    return r.status;
  };
  assert.equal(await send(chatBody({ model: 'paced-model', stream: true })), 200);
  assert.equal(await send(chatBody()), 200);
  assert.equal(await send(chatBody({ model: 'limited-model' })), 200);
  const text = await (await fetch(`${h.url}/metrics`)).text();

  assert.equal(value(text, 'sluice_ttft_seconds_count{model="paced-model"}'), 1);
  // 5 chunks 40 ms apart: most gaps are in the 25-50 ms bucket or above.
  const gaps = value(text, 'sluice_stream_chunk_gap_seconds_count{deployment="paced/paced-model@local"}');
  assert.ok(gaps >= 4, `gaps observed: ${gaps}`);
  const under25ms = value(
    text,
    'sluice_stream_chunk_gap_seconds_bucket{le="0.025",deployment="paced/paced-model@local"}',
  );
  assert.ok(gaps - under25ms >= 3, 'the 40 ms gaps are measured as such');

  assert.ok(value(text, 'sluice_provider_rate_limited_total{provider="limited"}') >= 1);
  assert.equal(value(text, 'sluice_fallbacks_total{model="limited-model",fallback="test-model"}'), 1);
  assert.ok(
    value(
      text,
      'sluice_upstream_duration_seconds_count{provider="limited",deployment="limited/limited-model@local",outcome="upstream_error"}',
    ) >= 1,
  );
  const origin = h.fake.baseUrl.replace(/\/v1$/, '');
  assert.ok(value(text, `sluice_upstream_connections{origin="${origin}",state="connected"}`) >= 1);
  assert.equal(value(text, `sluice_upstream_connections{origin="${origin}",state="pending"}`), 0);

  // Tokens and cost are counted under the model the client asked for, priced by the deployment
  // that answered (test-model's, for limited-model's fallback too): USD 0.5 + 1 per token here.
  for (const model of ['test-model', 'limited-model']) {
    const prompt = value(text, `sluice_tokens_total{tenant="acme",model="${model}",kind="prompt"}`);
    const completion = value(text, `sluice_tokens_total{tenant="acme",model="${model}",kind="completion"}`);
    assert.ok(prompt > 0 && completion > 0);
    const cost = value(text, `sluice_cost_usd_total{tenant="acme",model="${model}"}`);
    assert.ok(Math.abs(cost - (prompt * 0.5 + completion)) < 1e-9, `${model}: ${cost}`);
  }
  assert.ok(
    !text.includes('sluice_cost_usd_total{tenant="acme",model="paced-model"}'),
    'no pricing, no cost',
  );
});
