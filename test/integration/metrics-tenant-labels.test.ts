/**
 * The tenant label of sluice_tokens_total and sluice_cost_usd_total is bounded by the `metrics`
 * settings, whatever the number of tenants: past the bound tenants share tenant="_other", and no
 * token or cost is lost from the totals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashKey } from '../../src/auth/keys.ts';
import { validateConfig } from '../../src/config/load.ts';
import { baseConfig, chatBody, type Harness, startHarness } from '../helpers/harness.ts';

const TENANTS = 60;
const keyOf = (i: number) => `sk-test-tenant${i}-0123456789`;

/** The harness's tenants (its pass-through config names them) and 60 more. */
function manyTenants(base: Record<string, unknown>): Record<string, unknown> {
  const tenants: Record<string, unknown> = { ...(base.tenants as Record<string, unknown>) };
  for (let i = 0; i < TENANTS; i++) tenants[`tenant${i}`] = { keys: [hashKey(keyOf(i))] };
  return tenants;
}

/** Every tenant sends one request (10 at a time): bounded in count. */
async function everyTenantOnce(h: Harness): Promise<void> {
  for (let i = 0; i < TENANTS; i += 10) {
    await Promise.all(
      Array.from({ length: 10 }, async (_, j) => {
        const res = await fetch(`${h.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${keyOf(i + j)}`, 'content-type': 'application/json' },
          body: chatBody(),
        });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }),
    );
  }
}

/** The sluice_tokens_total / sluice_cost_usd_total series: tenant label -> summed value. */
async function byTenant(h: Harness, name: string): Promise<{ series: number; tenants: Map<string, number> }> {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const lines = text.split('\n').filter((l) => l.startsWith(`${name}{`));
  const tenants = new Map<string, number>();
  for (const line of lines) {
    const tenant = /tenant="([^"]*)"/.exec(line)![1]!;
    tenants.set(tenant, (tenants.get(tenant) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return { series: lines.length, tenants };
}

const priced = (config: Record<string, unknown>) => {
  const models = config.models as Record<string, { deployments: Array<Record<string, unknown>> }>;
  models['test-model']!.deployments[0]!.pricing = { inputPerMillion: 1, outputPerMillion: 2 };
  return config;
};

describe('metrics.maxTenantLabels', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) =>
        priced({
          ...baseConfig(fake),
          tenants: manyTenants(baseConfig(fake)),
          metrics: { maxTenantLabels: 5 },
        }),
    });
  });
  after(() => h.close());

  it('60 tenants make at most 5 + 1 tenant label values; the totals are all there', async () => {
    await everyTenantOnce(h);
    const tokens = await byTenant(h, 'sluice_tokens_total');
    assert.equal(tokens.tenants.size, 6, [...tokens.tenants.keys()].join(','));
    assert.ok(tokens.tenants.has('_other'));
    // One model, two kinds: 6 tenant values x 2, whatever the number of tenants.
    assert.equal(tokens.series, 12);
    // The fake answers 5 completion tokens and a few prompt tokens per request.
    const total = [...tokens.tenants.values()].reduce((a, b) => a + b, 0);
    const perRequest = total / TENANTS;
    assert.ok(Number.isInteger(perRequest) && perRequest > 5, `every request counted: ${total}`);
    assert.equal(tokens.tenants.get('_other'), 55 * perRequest, '55 tenants past the bound');
    const cost = await byTenant(h, 'sluice_cost_usd_total');
    assert.equal(cost.series, 6);
    // A second round adds no series.
    await everyTenantOnce(h);
    assert.equal((await byTenant(h, 'sluice_tokens_total')).series, 12);
  });
});

describe('metrics.tenantLabels (allow-list)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        ...baseConfig(fake),
        tenants: manyTenants(baseConfig(fake)),
        metrics: { tenantLabels: ['tenant7', 'tenant42'] },
      }),
    });
  });
  after(() => h.close());

  it('exactly the listed tenants keep their name, every other is _other', async () => {
    await everyTenantOnce(h);
    const tokens = await byTenant(h, 'sluice_tokens_total');
    assert.deepEqual([...tokens.tenants.keys()].sort(), ['_other', 'tenant42', 'tenant7']);
    assert.equal(tokens.series, 6);
  });
});

it('the default bounds a 2,000-tenant x 50-model fleet far below 300,000 series', () => {
  const config = validateConfig(
    {
      providers: { p: { kind: 'fake' } },
      models: { m: { deployments: [{ provider: 'p' }] } },
      tenants: { t: { keys: [hashKey('sk-test-default-0123456789')] } },
    },
    {},
  );
  assert.equal(config.metrics.tenantLabels, undefined);
  // (tenant values + _other) x 50 models x (2 token kinds + 1 cost).
  const series = (config.metrics.maxTenantLabels + 1) * 50 * 3;
  assert.ok(series <= 20_000, `${series} series`);
});
