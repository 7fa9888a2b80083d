// The gateway process of bench/instrumentation.ts: Sluice as main.ts builds it, with its metrics
// and access log on (as shipped), or off: no-op metric objects and logging silent.
//   node bench/instrumentation-target.ts --config FILE --mode on|off|no-logs|no-metrics
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { buildApp } from '../src/app.ts';
import { loadConfigFile } from '../src/config/load.ts';
import { compileRuntime } from '../src/runtime.ts';
import { createLoggers, stdoutDestination } from '../src/telemetry/logger.ts';
import { createMetrics, type Metrics } from '../src/telemetry/metrics.ts';

const { values } = parseArgs({
  options: { config: { type: 'string' }, mode: { type: 'string', default: 'on' } },
});
const mode = values.mode;
const logsOn = mode === 'on' || mode === 'no-metrics' || mode === 'no-default';
const metricsOn = mode === 'on' || mode === 'no-logs' || mode === 'no-default';

/** Metrics whose every inc/observe/set does nothing, shaped like the real ones. */
function noopMetrics(): Metrics {
  const noop: Record<string, unknown> = {};
  for (const f of ['inc', 'dec', 'set', 'observe', 'reset', 'remove']) noop[f] = () => {};
  noop.labels = () => noop;
  const real = createMetrics({ defaultMetrics: false }) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(real)) {
    if (key === 'registry') out[key] = new Registry();
    else if (key === 'hot') {
      out[key] = Object.fromEntries(Object.keys(value as object).map((k) => [k, { get: () => noop }]));
    } else if (typeof value === 'function') out[key] = () => {};
    else out[key] = noop;
  }
  return out as unknown as Metrics;
}

const config = await loadConfigFile(values.config!, process.env);
const loggers = createLoggers(logsOn ? 'info' : 'silent', stdoutDestination());
const gateway = await buildApp(compileRuntime(config), {
  logger: loggers.log,
  accessLogger: loggers.access,
  metrics: metricsOn ? createMetrics({ defaultMetrics: mode !== 'no-default' }) : noopMetrics(),
});
await gateway.app.listen({ host: config.server.host, port: config.server.port });
process.on('SIGTERM', () => {
  void gateway.shutdown(1_000).then(() => process.exit(0));
});
