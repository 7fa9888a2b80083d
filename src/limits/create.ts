/**
 * Builds the limiter a gateway process uses: the Redis store when `limits.redis.url` is set (the
 * URL is read once, at start), wrapped in the failover store that falls back to local memory.
 * Switches between the two are logged once each way and shown by `sluice_limiter_store`.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { FailoverStore } from './failover-store.ts';
import { Limiter } from './limiter.ts';
import { RedisStore } from './redis-store.ts';

export function createLimiter(config: Config, deps: { metrics: Metrics; log: Logger }): Limiter {
  const { metrics, log } = deps;
  const settings = config.limits.redis;
  const redis = settings.url
    ? new RedisStore({ url: settings.url, commandTimeoutMs: settings.commandTimeoutMs })
    : undefined;

  const store: FailoverStore = new FailoverStore({
    redis,
    failuresToOpen: settings.failuresToOpen,
    cooldownMs: settings.cooldownMs,
    onError: () => metrics.limiterStoreErrors.inc(),
    onSwitch(to, reason) {
      metrics.limiterStore.set({ store: 'redis' }, to === 'redis' ? 1 : 0);
      metrics.limiterStore.set({ store: 'local' }, to === 'local' ? 1 : 0);
      if (to === 'local') {
        log.warn(
          { reason, instances: store.instances },
          'limits: Redis unreachable; each instance now enforces its share of every limit locally',
        );
      } else {
        log.info('limits: Redis is back; limits are shared across instances again');
      }
    },
  });
  metrics.limiterStore.set({ store: 'redis' }, redis ? 1 : 0);
  metrics.limiterStore.set({ store: 'local' }, redis ? 0 : 1);
  return new Limiter({ store, metrics });
}
