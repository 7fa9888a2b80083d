/**
 * Which `server` settings need a restart: the one list. The reload warning (src/serve.ts) uses it,
 * and test/unit/restart-settings.test.ts checks that every `server` setting of the schema is in
 * exactly one of these lists and that README.md, docs/config.md and config/example.yaml name
 * the same ones, so the docs cannot drift from the code.
 */
import type { Config } from './schema.ts';

type ServerSetting = keyof Config['server'];

/**
 * Read once, when the listener is built: the address it binds (host, port, metricsPort), and the
 * body limit and JSON depth baked into fastify's parsers (src/app.ts).
 */
export const RESTART_SERVER_SETTINGS = [
  'host',
  'port',
  'bodyLimitBytes',
  'maxJsonDepth',
  'metricsPort',
] as const satisfies readonly ServerSetting[];

/**
 * Read from the running config, or pushed into the listener on every reload (src/app.ts `apply`:
 * the authenticator and the connection guard's configure()).
 */
export const RELOAD_SERVER_SETTINGS = [
  'drainTimeoutMs',
  'maxResponseBytes',
  'headersTimeoutMs',
  'requestTimeoutMs',
  'keepAliveTimeoutMs',
  'maxConnectionsPerAddress',
  'trustedProxies',
  'authFailures',
] as const satisfies readonly ServerSetting[];

/** The restart-only settings whose value differs, as `server.<name>`; empty when none does. */
export function serverChangesNeedingRestart(before: Config['server'], after: Config['server']): string[] {
  const changed: string[] = [];
  for (const name of RESTART_SERVER_SETTINGS) {
    if (before[name] !== after[name]) changed.push(`server.${name}`);
  }
  return changed;
}
