/**
 * docs/metrics.md lists every metric Sluice registers, with its type and labels, and nothing else:
 * dashboards and alert rules are written from that page.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createMetrics } from '../../src/telemetry/metrics.ts';

const DOC = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');

interface Described {
  type: string;
  labels: string[];
}

function documented(): Map<string, Described> {
  const out = new Map<string, Described>();
  for (const line of DOC.split('\n')) {
    const m = /^\|\s*`(sluice_[a-z_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|/.exec(line);
    if (!m) continue;
    assert.ok(!out.has(m[1]!), `${m[1]} is listed twice`);
    const labels = m[3]!.trim() === '-' ? [] : [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((x) => x[1]!);
    out.set(m[1]!, { type: m[2]!, labels });
  }
  return out;
}

test('docs/metrics.md and the registry list the same metrics, types and labels', async () => {
  const registry = createMetrics({ defaultMetrics: false }).registry;
  const registered = new Map<string, Described>();
  for (const metric of (await registry.getMetricsAsJSON()) as unknown as Array<{
    name: string;
    type: string;
  }>) {
    const object = registry.getSingleMetric(metric.name) as unknown as { labelNames?: string[] };
    registered.set(metric.name, { type: metric.type, labels: [...(object.labelNames ?? [])] });
  }
  const docs = documented();
  assert.ok(registered.size > 30);
  assert.deepEqual([...docs.keys()].sort(), [...registered.keys()].sort(), 'the same names');
  for (const [name, described] of docs) assert.deepEqual(described, registered.get(name), name);
});
