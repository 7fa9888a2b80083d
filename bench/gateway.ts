// The in-process gateway the scenario benches (fault, limits, queue) run against.
import { buildApp, type Gateway } from '../src/app.ts';
import { validateConfig } from '../src/config/load.ts';
import { compileRuntime } from '../src/runtime.ts';
import { createLoggers } from '../src/telemetry/logger.ts';

/**
 * A gateway in this process on a free loopback port (the scenario benches: fault, limits, queue).
 * `write` receives its log lines (default: stderr, so they stay out of the result tables).
 */
export async function inProcessGateway(
  raw: Record<string, unknown>,
  level: string,
  write: (line: string) => void = (line) => process.stderr.write(line),
): Promise<{ gateway: Gateway; url: string }> {
  const config = validateConfig({ ...raw, server: { host: '127.0.0.1', port: 0 } }, {});
  const loggers = createLoggers(level, { write });
  const gateway = await buildApp(compileRuntime(config), {
    logger: loggers.log,
    accessLogger: loggers.access,
  });
  return { gateway, url: await gateway.app.listen({ host: '127.0.0.1', port: 0 }) };
}
