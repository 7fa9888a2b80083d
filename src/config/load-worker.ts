/**
 * The config loader's thread: reads, parses, interpolates and validates a config file away from
 * the gateway's event loop, which keeps serving while a large config loads. It answers with one
 * message, the config in slices (slices.ts) or the ConfigError's path and reason, then exits.
 * Started by load-thread.ts, one per load.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ITEMS_PER_TURN } from './in-turns.ts';
import type { Env } from './interpolate.ts';
import { checkConfigFile } from './load.ts';
import { ConfigError } from './load-error.ts';
import { sliceConfig } from './slices.ts';

const { file, env } = workerData as { file: string; env: Env };

try {
  const config = await checkConfigFile(file, env);
  parentPort!.postMessage({ ok: true, config: sliceConfig(config, ITEMS_PER_TURN) });
} catch (err) {
  parentPort!.postMessage(
    err instanceof ConfigError
      ? { ok: false, path: err.path, reason: err.reason }
      : { ok: false, error: (err as Error).stack ?? String(err) },
  );
}
