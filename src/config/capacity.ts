/**
 * Each model's admission-queue capacity, aligned with the connection pools: a model may have at
 * most `maxConcurrent` requests calling its deployments on this instance, and the models whose
 * deployments share an upstream origin never need more connections than that origin's pool has
 * (the sum of its providers' `connections`). Otherwise requests would queue inside the pool,
 * unseen, instead of in the admission queue where they are bounded, ordered and measured.
 *
 * Default maxConcurrent: the model's even share of each pool it uses (the smallest). An explicit
 * value that makes a pool too small is refused at load, naming the field.
 */
import { ConfigError } from './load-error.ts';
import { joinPath } from './path.ts';
import type { Config } from './schema.ts';

export interface ModelCapacity {
  readonly maxConcurrent: number;
  readonly maxQueued: number;
}

/** A provider's pool key: its base URL's origin; providers without one share the in-process fake. */
export function originOf(baseUrl: string | undefined): string {
  return baseUrl === undefined ? 'embedded-fake' : new URL(baseUrl).origin;
}

export function queueCapacities(config: Config): Map<string, ModelCapacity> {
  const pool = new Map<string, number>();
  const providersOf = new Map<string, string[]>();
  for (const [name, p] of Object.entries(config.providers)) {
    const origin = originOf(p.baseUrl);
    pool.set(origin, (pool.get(origin) ?? 0) + p.connections);
    providersOf.set(origin, [...(providersOf.get(origin) ?? []), name]);
  }
  const originsOf = new Map<string, Set<string>>();
  const modelsOn = new Map<string, string[]>();
  for (const [model, m] of Object.entries(config.models)) {
    const origins = new Set(m.deployments.map((d) => originOf(config.providers[d.provider]!.baseUrl)));
    originsOf.set(model, origins);
    for (const o of origins) modelsOn.set(o, [...(modelsOn.get(o) ?? []), model]);
  }
  const caps = new Map<string, ModelCapacity>();
  for (const [model, origins] of originsOf) {
    const explicit = config.models[model]!.queue?.maxConcurrent;
    let share = Number.POSITIVE_INFINITY;
    for (const o of origins) share = Math.min(share, Math.floor(pool.get(o)! / modelsOn.get(o)!.length));
    const maxConcurrent = explicit ?? Math.max(1, share);
    const maxQueued =
      config.models[model]!.queue?.maxQueued ?? Math.floor(config.queue.queuedPerSlot * maxConcurrent);
    caps.set(model, { maxConcurrent, maxQueued });
  }
  for (const [origin, models] of modelsOn) {
    const needed = models.reduce((n, m) => n + caps.get(m)!.maxConcurrent, 0);
    const have = pool.get(origin)!;
    if (needed <= have) continue;
    const providers = providersOf.get(origin)!;
    const blame = models
      .filter((m) => config.models[m]!.queue?.maxConcurrent !== undefined)
      .sort((a, b) => caps.get(b)!.maxConcurrent - caps.get(a)!.maxConcurrent)[0];
    const pools = `${origin} has ${have} connections (providers ${providers.join(', ')}) for models ${models.join(', ')}, which may call it ${needed} at once`;
    if (blame) {
      throw new ConfigError(
        `${joinPath('models', blame)}.queue.maxConcurrent`,
        `too high for the connection pool: ${pools}; raise the providers' connections or lower maxConcurrent`,
      );
    }
    throw new ConfigError(
      `${joinPath('providers', providers[0]!)}.connections`,
      `fewer connections than the models that use it: ${pools}`,
    );
  }
  return caps;
}
