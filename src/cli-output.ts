/** How the command line reports a config that cannot be loaded: the ConfigError's path and message, never a stack. */
import { ConfigError } from './config/load.ts';

export function configFailure(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`sluice: config error: ${err.message}\n`);
    return 1;
  }
  process.stderr.write(`sluice: ${(err as Error).stack ?? String(err)}\n`);
  return 1;
}
