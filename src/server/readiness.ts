/**
 * What /readyz says about each dependency, and whether it takes the instance out of rotation.
 *
 * Only what is wrong with this instance fails readiness (draining, or a check below saying so).
 * Redis and Postgres are shared by every instance: when one of them is down, every instance sees it
 * at once, and failing readiness everywhere would leave the load balancer nothing to route to,
 * turning a clear answer (served with local limits, or 503 limiter_unavailable for a tenant set to
 * fail closed) into connection errors for every tenant. So both are reported, never failed on.
 */
import type { Config } from '../config/schema.ts';
import type { FailoverStore } from '../limits/failover-store.ts';
import type { WriterStats } from '../requestlog/writer.ts';
import type { DependencyState, ReadinessCheck } from './routes/health.ts';

/**
 * The limit store: `local` (no Redis configured), `redis`, or `local_fallback` (Redis configured
 * but down: each instance enforces its share locally; tenants set to fail closed are refused).
 */
export function limitsReadiness(store: FailoverStore, config: () => Config): ReadinessCheck {
  return {
    name: 'limits',
    check(): DependencyState {
      if (!store.hasRedis) return { state: 'local', ready: true };
      if (store.redisReady && store.active === 'redis') return { state: 'redis', ready: true };
      const closed = failClosedTenants(config());
      return {
        state: 'local_fallback',
        ready: true,
        detail:
          closed === 0
            ? 'Redis unreachable: each instance enforces its share of every limit locally'
            : `Redis unreachable: limits are local; ${closed === 'all' ? 'every tenant' : `${closed} tenant(s)`} set to failureMode closed get 503 limiter_unavailable`,
      };
    },
  };
}

/** Per config snapshot (a probe during an outage must not walk 50,000 tenants each time). */
const closedCounts = new WeakMap<Config, number | 'all'>();

/** How many tenants are refused while Redis is down; 'all' when every one is. */
function failClosedTenants(config: Config): number | 'all' {
  let counted = closedCounts.get(config);
  if (counted === undefined) {
    const { redis, tenants: limits = {} } = config.limits;
    let closed = 0;
    let total = 0;
    for (const name of Object.keys(config.tenants)) {
      total++;
      if ((limits[name]?.failureMode ?? redis.failureMode) === 'closed') closed++;
    }
    counted = closed > 0 && closed === total ? 'all' : closed;
    closedCounts.set(config, counted);
  }
  return counted;
}

/**
 * The request log writer: `up`, `replaying` (database back, spilled rows on their way in),
 * `spilling` (database unavailable: rows go to the spill directory and are replayed later) or
 * `buffering` (database unavailable and the spill directory refusing: rows wait in memory up to
 * maxBufferedRows, then are dropped, counted). Rows are never on a request's path, so none of these
 * fails readiness: the instance serves the same either way.
 */
export function requestLogReadiness(stats: () => WriterStats): ReadinessCheck {
  return {
    name: 'requestLog',
    check(): DependencyState {
      const s = stats();
      if (s.healthy) return { state: s.spillPending ? 'replaying' : 'up', ready: true };
      if (s.spillFailing) {
        return {
          state: 'buffering',
          ready: true,
          detail: `database unavailable and the spill directory refusing rows: ${s.buffered} row(s) in memory`,
        };
      }
      return {
        state: 'spilling',
        ready: true,
        detail: `database unavailable: rows go to the spill directory (${s.spillBytes} bytes) and are replayed when it is back`,
      };
    },
  };
}
