/**
 * Settings given on the command line, over the loaded config: `--port` beats server.port (and
 * SLUICE_PORT for the embedded config). Applied after validation to every load, reloads
 * included, so a reload never moves the port back to the file's.
 */
import { deepFreeze } from './freeze.ts';
import type { Config } from './schema.ts';

export interface ConfigOverrides {
  readonly port?: number;
}

export function withOverrides(config: Config, overrides: ConfigOverrides): Config {
  if (overrides.port === undefined || overrides.port === config.server.port) return config;
  return deepFreeze({ ...config, server: { ...config.server, port: overrides.port } });
}

/** `--port` text to a port number, or undefined when it is not one (0 picks a free port). */
export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65_535 ? port : undefined;
}
