/**
 * Every panel query of dashboards/ returns data from a real Prometheus scraping a live gateway
 * under load (scripts/check-dashboards.ts): a panel that names a series that never appears, or a
 * query Prometheus refuses, fails here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkDashboards, PROMETHEUS } from '../../scripts/check-dashboards.ts';
import { requireRedis } from '../helpers/redis.ts';

test('every dashboard panel query returns data from Prometheus scraping a gateway under load', async (t) => {
  if (!PROMETHEUS) {
    if (process.env.CI === 'true') throw new Error('CI: prometheus is required (Debian package prometheus)');
    t.skip('prometheus not installed (Debian package prometheus)');
    return;
  }
  if (!(await requireRedis(t))) return;
  const results = await checkDashboards(10);
  assert.ok(results.length >= 40);
  const failed = results.filter((r) => r.series === 0 || r.error);
  assert.deepEqual(
    failed.map((r) => `${r.dashboard} / ${r.panel}: ${r.error ?? 'no data'} (${r.expr})`),
    [],
  );
});
