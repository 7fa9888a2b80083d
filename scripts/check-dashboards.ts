/**
 * Evaluates every panel query of dashboards/ against a real Prometheus (Debian package
 * `prometheus`, on loopback) scraping a live gateway under load, and fails on any query that
 * returns no data. The load exercises what the panels show: streams, retries and an exhausted
 * retry budget, provider 429s and fallbacks, truncated streams, queue and limiter refusals,
 * priced tokens, limits in Redis ($REDIS_URL, default 127.0.0.1:6379), and the request log
 * (embedded PGlite).
 *
 *   node scripts/check-dashboards.ts [--seconds 20]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { freePort } from '../bench/procs.ts';
import { buildApp } from '../src/app.ts';
import { hashKey } from '../src/auth/keys.ts';
import { validateConfig } from '../src/config/load.ts';
import { startFakeProvider } from '../src/fake-provider/server.ts';
import { PgliteDb } from '../src/requestlog/pglite-db.ts';
import { RequestLog } from '../src/requestlog/request-log.ts';
import { compileRuntime } from '../src/runtime.ts';
import { createMetrics } from '../src/telemetry/metrics.ts';
import { SPECS } from './write-dashboards.ts';

export const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p));
const KEY = 'sk-dashboards-acme';
const BATCH_KEY = 'sk-dashboards-batchco';

export interface QueryResult {
  dashboard: string;
  panel: string;
  expr: string;
  series: number;
  error?: string;
}

/** Runs the gateway, the load and Prometheus for `seconds`, then evaluates every panel query. */
export async function checkDashboards(seconds: number): Promise<QueryResult[]> {
  if (!PROMETHEUS) throw new Error('prometheus is not installed (Debian package prometheus)');
  const dir = await mkdtemp(join(tmpdir(), 'sluice-dashboards-'));
  const fake = await startFakeProvider({ host: '127.0.0.1', port: 0 });
  const origin = fake.baseUrl.replace(/\/v1$/, '');
  const at = (behaviour: string, extra: Record<string, unknown> = {}) => ({
    kind: 'openai',
    baseUrl: `${origin}/fake/${behaviour}/v1`,
    ...extra,
  });
  const config = validateConfig(
    {
      server: { host: '127.0.0.1', port: 0 },
      logging: { level: 'silent' },
      providers: {
        fake: { kind: 'openai', baseUrl: fake.baseUrl },
        flaky: at('fail-rate=0.6,tag=flaky'),
        limited: at('status=429,retry-after=0,tag=limited'),
        paced: at('chunks=6,chunk-gap-ms=15,tag=paced'),
        cut: at('chunks=10,chunk-gap-ms=5,disconnect-after=3,tag=cut'),
        slow: at('headers-delay-ms=150,tag=slow', { connections: 1 }),
      },
      models: {
        main: {
          deployments: [
            { provider: 'fake', pricing: { inputPerMillion: 2, outputPerMillion: 8 } },
            { provider: 'flaky', pricing: { inputPerMillion: 2, outputPerMillion: 8 } },
          ],
        },
        'limited-model': { deployments: [{ provider: 'limited' }], fallbacks: ['main'] },
        'stream-model': {
          deployments: [{ provider: 'paced', pricing: { inputPerMillion: 1, outputPerMillion: 1 } }],
        },
        'cut-model': { deployments: [{ provider: 'cut' }] },
        'slow-model': { deployments: [{ provider: 'slow' }], queue: { maxConcurrent: 1, maxQueued: 1 } },
      },
      tenants: {
        acme: { keys: [hashKey(KEY)], priority: 'critical' },
        batchco: { keys: [hashKey(BATCH_KEY)], priority: 'batch' },
      },
      // Limits in Redis (decision timings are recorded only there), keys of their own.
      limits: {
        redis: {
          url: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
          keyPrefix: `sluice-dashboards-${process.pid}`,
        },
        tenants: { batchco: { requests: { limit: 5, per: 'minute' } } },
      },
      requestLog: { spillDir: join(dir, 'spill'), flushIntervalMs: 200 },
    },
    {},
  );
  const metrics = createMetrics();
  const log = pino({ level: 'silent' });
  const requestLog = await RequestLog.open(config.requestLog, {
    log,
    metrics,
    db: await PgliteDb.open(undefined),
  });
  const gateway = await buildApp(compileRuntime(config), { logger: log, metrics, requestLog });
  const url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  const promPort = await freePort();
  await writeFile(
    join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s }\nscrape_configs:\n  - job_name: sluice\n    static_configs: [{ targets: ["${new URL(url).host}"] }]\n`,
  );
  const prometheus = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let promLog = '';
  prometheus.stderr!.on('data', (d) => {
    promLog = (promLog + d).slice(-4000);
  });
  const api = `http://127.0.0.1:${promPort}/api/v1`;
  try {
    // Load for `seconds`, a mix of everything the panels show.
    const end = Date.now() + seconds * 1000;
    const bodies = [
      [KEY, { model: 'main' }],
      [KEY, { model: 'main', stream: true }],
      [KEY, { model: 'limited-model' }],
      [KEY, { model: 'stream-model', stream: true }],
      [KEY, { model: 'cut-model', stream: true }],
      [KEY, { model: 'slow-model' }],
      [KEY, { model: 'slow-model' }],
      [BATCH_KEY, { model: 'main' }],
    ] as const;
    let i = 0;
    const worker = async () => {
      while (Date.now() < end) {
        const [key, extra] = bodies[i++ % bodies.length]!;
        try {
          const r = await fetch(`${url}/v1/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ messages: [{ role: 'user', content: 'hello' }], ...extra }),
            signal: AbortSignal.timeout(10_000),
          });
          await r.arrayBuffer();
        } catch {
          // a cut stream or a timeout: the metrics count it
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    // Two more scrapes after the last request.
    await new Promise((r) => setTimeout(r, 2_500));
    const results: QueryResult[] = [];
    for (const spec of SPECS) {
      for (const panel of spec.panels) {
        for (const target of panel.targets) {
          const res = await fetch(`${api}/query?query=${encodeURIComponent(target.expr)}`);
          const body = (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
          results.push({
            dashboard: spec.file,
            panel: panel.title,
            expr: target.expr,
            series: body.data?.result.length ?? 0,
            ...(body.status === 'success' ? {} : { error: body.error ?? res.statusText }),
          });
        }
      }
    }
    return results;
  } catch (err) {
    throw new Error(`${(err as Error).message}\nprometheus: ${promLog}`);
  } finally {
    prometheus.kill('SIGTERM');
    await new Promise((r) => prometheus.once('exit', r));
    await gateway.shutdown(1_000);
    await requestLog.close(2_000);
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '20' } } });
  const results = await checkDashboards(Number(values.seconds));
  const empty = results.filter((r) => r.series === 0 || r.error);
  for (const r of results) {
    process.stdout.write(
      `${r.series === 0 || r.error ? 'NO DATA' : `${String(r.series).padStart(3)} series`}  ${r.dashboard}  ${r.panel}${r.error ? `  (${r.error})` : ''}\n`,
    );
  }
  process.stdout.write(
    `\n${results.length - empty.length} of ${results.length} panel queries returned data\n`,
  );
  process.exit(empty.length === 0 ? 0 : 1);
}
