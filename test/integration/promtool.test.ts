/**
 * Prometheus' own checks: the exposition of a gateway that served varied traffic passes
 * `promtool check metrics`, the alert rules pass `promtool check rules` and their unit tests
 * (`promtool test rules`), and every metric a rule uses is one Sluice exports.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createMetrics } from '../../src/telemetry/metrics.ts';
import { baseConfig, behaviourProviders, chatBody, startHarness } from '../helpers/harness.ts';
import { metricNames, promtool, requirePromtool } from '../helpers/promtool.ts';

const RULES_DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));

test('promtool check metrics: the exposition after varied traffic is clean', async (t) => {
  const bin = requirePromtool(t);
  if (!bin) return;
  const h = await startHarness({
    config: (fake) => ({
      ...baseConfig(fake),
      providers: {
        ...(baseConfig(fake).providers as object),
        ...behaviourProviders(fake, { bad: 'status=503' }),
      },
      models: {
        'test-model': {
          deployments: [{ provider: 'fake', pricing: { inputPerMillion: 1, outputPerMillion: 2 } }],
        },
        'bad-model': { deployments: [{ provider: 'bad' }], fallbacks: ['test-model'] },
      },
    }),
  });
  t.after(() => h.close());
  for (const body of [
    chatBody(),
    chatBody({ stream: true }),
    chatBody({ model: 'bad-model' }),
    chatBody({ model: 'x' }),
  ]) {
    const r = await fetch(`${h.baseURL}/chat/completions`, { method: 'POST', headers: h.headers(), body });
    await r.arrayBuffer();
  }
  const exposition = await (await fetch(`${h.url}/metrics`)).text();
  const { output } = await promtool(bin, ['check', 'metrics'], exposition);
  // prom-client's default nodejs_* gauges end in _total (not ours to rename); anything else fails.
  const problems = output
    .split('\n')
    .filter(
      (l) =>
        l.trim() !== '' &&
        !/^nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(l),
    );
  assert.deepEqual(problems, []);
  assert.ok(exposition.includes('sluice_fallbacks_total{model="bad-model",fallback="test-model"} 1'));
});

test('the alert rules: promtool check rules, promtool test rules, and only metrics Sluice exports', async (t) => {
  const bin = requirePromtool(t);
  if (!bin) return;
  const check = await promtool(bin, ['check', 'rules', 'alerts.yml'], undefined, RULES_DIR);
  assert.equal(check.code, 0, check.output);
  assert.match(check.output, /SUCCESS: 7 rules found/);
  const unit = await promtool(bin, ['test', 'rules', 'alerts.test.yml'], undefined, RULES_DIR);
  assert.equal(unit.code, 0, unit.output);

  const registered = new Set(
    (
      (await createMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()) as unknown as Array<{
        name: string;
      }>
    ).map((m) => m.name),
  );
  const rules = readFileSync(`${RULES_DIR}alerts.yml`, 'utf8');
  const used = metricNames(rules);
  assert.ok(used.length >= 8);
  assert.deepEqual(
    used.filter((n) => !registered.has(n)),
    [],
  );
  // Each alert has a runbook section.
  const runbook = readFileSync(new URL('../../docs/runbook.md', import.meta.url), 'utf8');
  for (const [, name] of rules.matchAll(/alert: (\w+)/g)) {
    assert.ok(runbook.includes(`## ${name}\n`), `docs/runbook.md has a section for ${name}`);
    assert.ok(rules.includes(`docs/runbook.md#${name!.toLowerCase()}`), `${name} links its runbook section`);
  }
});
