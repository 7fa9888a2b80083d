/**
 * dashboards/ and the compose stack: the committed dashboards are what scripts/write-dashboards.ts
 * writes, every panel query names only metrics Sluice exports, and docker-compose.yml's mounts,
 * Sluice config, datasource and scrape target fit together.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { DASHBOARD_DIR, DATASOURCE, dashboardText, SPECS } from '../../scripts/write-dashboards.ts';
import { validateConfig } from '../../src/config/load.ts';
import { createMetrics } from '../../src/telemetry/metrics.ts';
import { metricNames } from '../helpers/promtool.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Dashboard {
  uid: string;
  title: string;
  panels: Array<{ title: string; targets: Array<{ expr: string; datasource: { uid: string } }> }>;
}

test('dashboards/: the files are what the generator writes (npm run dashboards)', () => {
  const files = readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith('.json'));
  assert.deepEqual(files.sort(), SPECS.map((s) => s.file).sort());
  for (const spec of SPECS) {
    assert.equal(readFileSync(`${DASHBOARD_DIR}${spec.file}`, 'utf8'), dashboardText(spec), spec.file);
  }
});

test('every panel query refers only to metrics Sluice exports, and each dashboard uses most of its area', async () => {
  const registered = new Set(
    (
      (await createMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()) as unknown as Array<{
        name: string;
      }>
    ).map((m) => m.name),
  );
  const used = new Set<string>();
  const uids = new Set<string>();
  for (const file of readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith('.json'))) {
    const d = JSON.parse(readFileSync(`${DASHBOARD_DIR}${file}`, 'utf8')) as Dashboard;
    assert.ok(!uids.has(d.uid), `uid ${d.uid} is unique`);
    uids.add(d.uid);
    assert.ok(d.panels.length >= 6, `${file} has panels`);
    for (const panel of d.panels) {
      assert.ok(panel.targets.length > 0, `${file}: ${panel.title} has a query`);
      for (const target of panel.targets) {
        assert.equal(target.datasource.uid, DATASOURCE.uid);
        const names = metricNames(target.expr);
        assert.ok(names.length > 0, `${file}: ${panel.title}: ${target.expr}`);
        for (const name of names) {
          assert.ok(registered.has(name), `${file}: ${panel.title}: ${name} is not a Sluice metric`);
          used.add(name);
        }
      }
    }
  }
  assert.equal(uids.size, 4);
  // The dashboards cover what operators run from: RED, breakers, limits, queue, tokens, cost, log.
  for (const name of [
    'sluice_requests_total',
    'sluice_breaker_state',
    'sluice_limiter_decisions_total',
    'sluice_queue_depth',
    'sluice_cost_usd_total',
    'sluice_request_log_rows_total',
    'sluice_ttft_seconds',
    'sluice_upstream_connections',
  ]) {
    assert.ok(used.has(name), `a panel shows ${name}`);
  }
});

test('docker-compose.yml: the services, mounts, Sluice config, datasource and scrape target fit', () => {
  const compose = parseYaml(readFileSync(`${ROOT}docker-compose.yml`, 'utf8')) as {
    services: Record<string, { volumes?: string[]; environment?: Record<string, string>; ports?: string[] }>;
  };
  assert.deepEqual(Object.keys(compose.services).sort(), [
    'fake-provider',
    'grafana',
    'pgbouncer',
    'postgres',
    'prometheus',
    'redis',
    'sluice',
  ]);
  for (const [name, service] of Object.entries(compose.services)) {
    for (const volume of service.volumes ?? []) {
      const host = volume.split(':')[0]!;
      assert.ok(existsSync(`${ROOT}${host}`), `${name}: ${host} exists`);
    }
    for (const port of service.ports ?? [])
      assert.match(port, /^127\.0\.0\.1:/, `${name} binds loopback only`);
  }
  // Sluice's config is valid with the environment compose gives it.
  const sluice = compose.services.sluice!;
  const configFile = sluice.volumes!.find((v) => v.endsWith(':/etc/sluice/config.yaml:ro'))!.split(':')[0]!;
  const config = validateConfig(parseYaml(readFileSync(`${ROOT}${configFile}`, 'utf8')), sluice.environment!);
  assert.equal(config.server.port, 8080);
  assert.match(config.requestLog.url!, /@pgbouncer:5432\//);
  assert.equal(config.limits.redis.url, 'redis://redis:6379');
  // Prometheus scrapes that port; Grafana's datasource is the one the dashboards name.
  const prometheus = parseYaml(readFileSync(`${ROOT}deploy/prometheus/prometheus.yml`, 'utf8')) as {
    scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
  };
  assert.deepEqual(prometheus.scrape_configs[0]!.static_configs[0]!.targets, ['sluice:8080']);
  const datasources = parseYaml(readFileSync(`${ROOT}deploy/grafana/datasources.yml`, 'utf8')) as {
    datasources: Array<{ uid: string; url: string }>;
  };
  assert.equal(datasources.datasources[0]!.uid, DATASOURCE.uid);
  assert.equal(datasources.datasources[0]!.url, 'http://prometheus:9090');
});
