/**
 * Loads a config file in a worker thread (load-worker.ts) and rebuilds it here a slice per
 * event-loop turn (slices.ts): parsing and validating 10,000 tenants took seconds of CPU, and on
 * the main thread every request and health probe waited for it. One thread per load, gone when it
 * has answered; the caller (main.ts) runs one load at a time, so a storm of reloads cannot pile
 * threads up. The environment for `${VAR}` interpolation is passed explicitly.
 */
import { Worker } from 'node:worker_threads';
import type { Env } from './interpolate.ts';
import { ConfigError } from './load-error.ts';
import type { Config } from './schema.ts';
import { rebuildConfig, type SlicedConfig } from './slices.ts';

const WORKER = new URL('./load-worker.ts', import.meta.url);

type Reply =
  | { readonly ok: true; readonly config: SlicedConfig }
  | { readonly ok: false; readonly path: string; readonly reason: string }
  | { readonly ok: false; readonly error: string };

/** Like loadConfigFile (deep-frozen result, ConfigError naming the field), without blocking the loop. */
export async function loadConfigInThread(file: string, env: Env): Promise<Config> {
  const worker = new Worker(WORKER, { workerData: { file, env: { ...env } } });
  const reply = await new Promise<Reply>((resolve, reject) => {
    worker.once('message', resolve);
    // A crash or running out of memory ends the thread, never the gateway.
    worker.once('error', (err) => reject(new Error(`the config loader thread failed: ${err.message}`)));
    worker.once('exit', (code) =>
      reject(new Error(`the config loader thread exited (${code}) without an answer`)),
    );
  });
  // The thread's heap (the parsed text, its events, the unsliced config: a few hundred MB at
  // 50,000 tenants) goes with it; it would end by itself, but not before its event loop drains.
  void worker.terminate();
  if (reply.ok) return rebuildConfig<Config>(reply.config);
  if ('reason' in reply) throw new ConfigError(reply.path, reply.reason);
  throw new Error(reply.error);
}
