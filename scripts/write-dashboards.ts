/**
 * Writes the Grafana dashboards in dashboards/ from the specs below (`npm run dashboards`).
 * test/unit/dashboards.test.ts fails when a committed file differs from what this writes, or when
 * a panel's query names a metric Sluice does not export; scripts/check-dashboards.ts evaluates
 * every query against a live gateway under load.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DASHBOARD_DIR = fileURLToPath(new URL('../dashboards/', import.meta.url));
/** The datasource uid the compose stack provisions (deploy/grafana/datasources.yml). */
export const DATASOURCE = { type: 'prometheus', uid: 'sluice-prometheus' };

interface Target {
  expr: string;
  legend: string;
}
interface Panel {
  title: string;
  unit: string;
  targets: Target[];
  kind?: 'timeseries' | 'stat';
  description?: string;
}
interface Spec {
  file: string;
  uid: string;
  title: string;
  description: string;
  panels: Panel[];
}

const q = (expr: string, legend: string): Target => ({ expr, legend });
const p99 = (metric: string, by: string) =>
  `histogram_quantile(0.99, sum by (le, ${by}) (rate(${metric}_bucket[5m])))`;
const p50 = (metric: string, by: string) =>
  `histogram_quantile(0.5, sum by (le, ${by}) (rate(${metric}_bucket[5m])))`;

export const SPECS: Spec[] = [
  {
    file: 'overview.json',
    uid: 'sluice-overview',
    title: 'Sluice / Overview',
    description: 'What broke, where: traffic, errors, latency, saturation.',
    panels: [
      {
        title: 'Requests by status class',
        unit: 'reqps',
        targets: ['2', '4', '5'].map((c) =>
          q(`sum(rate(sluice_requests_total{route=~"/v1/.*",status=~"${c}.."}[5m]))`, `${c}xx`),
        ),
      },
      {
        title: 'Errors by code',
        unit: 'reqps',
        targets: [q('sum by (code) (rate(sluice_requests_total{code!=""}[5m]))', '{{code}}')],
      },
      {
        title: 'Latency p50 / p99 by route',
        unit: 's',
        targets: [
          q(p50('sluice_request_duration_seconds', 'route'), 'p50 {{route}}'),
          q(p99('sluice_request_duration_seconds', 'route'), 'p99 {{route}}'),
        ],
      },
      {
        title: 'Time to first token p50 / p99 by model',
        unit: 's',
        targets: [
          q(p50('sluice_ttft_seconds', 'model'), 'p50 {{model}}'),
          q(p99('sluice_ttft_seconds', 'model'), 'p99 {{model}}'),
        ],
      },
      {
        title: 'In flight',
        unit: 'short',
        targets: [q('sum(sluice_requests_in_flight)', 'requests'), q('sum(sluice_queue_depth)', 'queued')],
      },
      {
        title: 'Upstream attempts by provider and outcome',
        unit: 'reqps',
        targets: [
          q(
            'sum by (provider, outcome) (rate(sluice_upstream_duration_seconds_count[5m]))',
            '{{provider}} {{outcome}}',
          ),
        ],
      },
      {
        title: 'Open breakers',
        unit: 'short',
        kind: 'stat',
        targets: [q('count(sluice_breaker_state == 2) or vector(0)', 'open')],
      },
      {
        title: 'Event loop delay p99 and shed level',
        unit: 's',
        targets: [
          q('max(sluice_event_loop_delay_seconds)', 'delay'),
          q('max(sluice_worker_shed_level)', 'shed level'),
        ],
      },
    ],
  },
  {
    file: 'providers.json',
    uid: 'sluice-providers',
    title: 'Sluice / Providers and breakers',
    description: 'Each deployment: its breaker, latency, failures, retries, 429s, pools and streams.',
    panels: [
      {
        title: 'Breaker state (0 closed, 1 half-open, 2 open)',
        unit: 'short',
        targets: [q('max by (deployment) (sluice_breaker_state)', '{{deployment}}')],
      },
      {
        title: 'Upstream latency p99 by deployment',
        unit: 's',
        targets: [q(p99('sluice_upstream_duration_seconds', 'deployment'), '{{deployment}}')],
      },
      {
        title: 'Failed attempts by class',
        unit: 'reqps',
        targets: [
          q(
            'sum by (deployment, class) (rate(sluice_attempt_failures_total[5m]))',
            '{{deployment}} {{class}}',
          ),
        ],
      },
      {
        title: 'Retries and exhausted retry budgets',
        unit: 'reqps',
        targets: [
          q('sum by (deployment) (rate(sluice_retries_total[5m]))', 'retries {{deployment}}'),
          q(
            'sum by (deployment) (rate(sluice_retry_budget_exhausted_total[5m]))',
            'budget exhausted {{deployment}}',
          ),
        ],
      },
      {
        title: 'Provider 429s',
        unit: 'reqps',
        targets: [q('sum by (provider) (rate(sluice_provider_rate_limited_total[5m]))', '{{provider}}')],
      },
      {
        title: 'Fallbacks',
        unit: 'reqps',
        targets: [
          q('sum by (model, fallback) (rate(sluice_fallbacks_total[5m]))', '{{model}} -> {{fallback}}'),
        ],
      },
      {
        title: 'Upstream connections per origin',
        unit: 'short',
        targets: [q('sum by (origin, state) (sluice_upstream_connections)', '{{origin}} {{state}}')],
      },
      {
        title: 'Stream chunk gap p99 by deployment',
        unit: 's',
        targets: [q(p99('sluice_stream_chunk_gap_seconds', 'deployment'), '{{deployment}}')],
      },
      {
        title: 'Streams cut after bytes were sent',
        unit: 'reqps',
        targets: [
          q(
            'sum by (deployment, code) (rate(sluice_streams_truncated_total[5m]))',
            '{{deployment}} {{code}}',
          ),
        ],
      },
    ],
  },
  {
    file: 'limits-queue.json',
    uid: 'sluice-limits-queue',
    title: 'Sluice / Limits and queue',
    description: 'Limiter decisions per layer, the limit store, admission queues and load shedding.',
    panels: [
      {
        title: 'Limiter decisions by layer and outcome',
        unit: 'reqps',
        targets: [
          q('sum by (layer, outcome) (rate(sluice_limiter_decisions_total[5m]))', '{{layer}} {{outcome}}'),
        ],
      },
      {
        title: 'Limiter decision time p99 by store',
        unit: 's',
        targets: [q(p99('sluice_limiter_duration_seconds', 'store'), '{{store}}')],
      },
      {
        title: 'Limit store in use (1 = active)',
        unit: 'short',
        targets: [
          q('max by (store) (sluice_limiter_store)', '{{store}}'),
          q('sum(rate(sluice_limiter_store_errors_total[5m]))', 'Redis errors/s'),
        ],
      },
      {
        title: 'Queue depth and slots in use by model',
        unit: 'short',
        targets: [
          q('sum by (model) (sluice_queue_depth)', 'waiting {{model}}'),
          q('sum by (model) (sluice_queue_in_flight)', 'running {{model}}'),
        ],
      },
      {
        title: 'Queue wait p99 by model',
        unit: 's',
        targets: [q(p99('sluice_queue_wait_seconds', 'model'), '{{model}}')],
      },
      {
        title: 'Queue refusals by reason',
        unit: 'reqps',
        targets: [
          q('sum by (model, reason) (rate(sluice_queue_refusals_total[5m]))', '{{model}} {{reason}}'),
        ],
      },
      {
        title: 'Worker shed level and event-loop utilisation',
        unit: 'short',
        targets: [
          q('max(sluice_worker_shed_level)', 'shed level'),
          q('max(sluice_event_loop_utilization)', 'utilisation'),
        ],
      },
    ],
  },
  {
    file: 'tenants-cost.json',
    uid: 'sluice-tenants-cost',
    title: 'Sluice / Tenants and cost',
    description: 'Tokens, cost and requests per tenant and model, and the request log that records them.',
    panels: [
      {
        title: 'Tokens per second by tenant',
        unit: 'short',
        targets: [q('sum by (tenant) (rate(sluice_tokens_total[5m]))', '{{tenant}}')],
      },
      {
        title: 'Cost (USD per hour) by tenant',
        unit: 'currencyUSD',
        targets: [q('sum by (tenant) (rate(sluice_cost_usd_total[5m])) * 3600', '{{tenant}}')],
      },
      {
        title: 'Cost (USD per hour) by model',
        unit: 'currencyUSD',
        targets: [q('sum by (model) (rate(sluice_cost_usd_total[5m])) * 3600', '{{model}}')],
      },
      {
        title: 'Tokens per second by model and kind',
        unit: 'short',
        targets: [q('sum by (model, kind) (rate(sluice_tokens_total[5m]))', '{{model}} {{kind}}')],
      },
      {
        title: 'Requests by model',
        unit: 'reqps',
        targets: [q('sum by (model) (rate(sluice_requests_total{route=~"/v1/.*"}[5m]))', '{{model}}')],
      },
      {
        title: 'Request log rows by outcome',
        unit: 'short',
        targets: [q('sum by (outcome) (rate(sluice_request_log_rows_total[5m]))', '{{outcome}}')],
      },
      {
        title: 'Request log writer',
        unit: 'short',
        targets: [
          q('sum(sluice_request_log_buffered_rows)', 'buffered rows'),
          q('sum(sluice_request_log_spill_bytes)', 'spill bytes'),
          q('min(sluice_request_log_database_up)', 'database up'),
          q(p99('sluice_request_log_write_duration_seconds', 'instance'), 'INSERT p99 {{instance}}'),
        ],
      },
    ],
  },
];

function panelJson(panel: Panel, i: number): Record<string, unknown> {
  const kind = panel.kind ?? 'timeseries';
  return {
    id: i + 1,
    type: kind,
    title: panel.title,
    ...(panel.description ? { description: panel.description } : {}),
    datasource: DATASOURCE,
    gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
    fieldConfig: { defaults: { unit: panel.unit }, overrides: [] },
    options:
      kind === 'stat'
        ? { reduceOptions: { calcs: ['lastNotNull'] }, colorMode: 'value' }
        : { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
    targets: panel.targets.map((t, j) => ({
      refId: String.fromCharCode(65 + j),
      datasource: DATASOURCE,
      expr: t.expr,
      legendFormat: t.legend,
    })),
  };
}

export function dashboardJson(spec: Spec): Record<string, unknown> {
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['sluice'],
    timezone: 'utc',
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: '10s',
    time: { from: 'now-1h', to: 'now' },
    panels: spec.panels.map(panelJson),
  };
}

/** The exact text of a dashboard file: 2-space JSON with a trailing newline. */
export function dashboardText(spec: Spec): string {
  return `${JSON.stringify(dashboardJson(spec), null, 2)}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const spec of SPECS) {
    writeFileSync(`${DASHBOARD_DIR}${spec.file}`, dashboardText(spec));
    process.stdout.write(`wrote dashboards/${spec.file}\n`);
  }
}
