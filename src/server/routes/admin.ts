import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../errors/sluice-error.ts';
import type { Limiter } from '../../limits/limiter.ts';
import type { WorkerShedder } from '../../limits/worker-shedder.ts';
import type { AdmissionQueues } from '../../queue/queues.ts';
import { parseRequestsQuery, parseUsageQuery, type Query } from '../../requestlog/queries.ts';
import type { RequestLog } from '../../requestlog/request-log.ts';
import type { HealthRegistry } from '../../resilience/health.ts';

export interface AdminDeps {
  readonly health: HealthRegistry;
  readonly limiter: Limiter;
  readonly shedder: WorkerShedder;
  readonly queues: AdmissionQueues;
  readonly requestLog: RequestLog | undefined;
  /** Reload the config as SIGHUP does; absent: POST /admin/reload answers 404. */
  readonly reload?: ((reason: string) => Promise<ReloadOutcome>) | undefined;
}

/** What a reload did: applied, or rejected with the ConfigError's path and message. */
export type ReloadOutcome =
  | { readonly result: 'applied'; readonly models: number; readonly providers: number }
  | { readonly result: 'rejected'; readonly path: string; readonly message: string };

/**
 * GET /admin/breakers: each deployment's breaker state, counts in the current window and load.
 * GET /admin/limits: where limits are decided now, this instance's leases and its shed level.
 * GET /admin/queues: each model's admission queue on this instance.
 * GET /admin/requests: request-log rows, newest first, filtered, in keyset pages.
 * GET /admin/usage: requests, errors, tokens and cost per tenant and model per hour or day.
 * GET /admin/request-log: this instance's log writer (buffer, spill, database state).
 * POST /admin/reload: reload the config now, as SIGHUP does, and answer with the outcome (200
 *   either way: the request worked; `result` says whether the config was applied). Another way
 *   than a signal, which needs the right pid and a shell on the host.
 */
export function registerAdminRoutes(app: FastifyInstance, deps: AdminDeps): void {
  app.get('/admin/breakers', { config: { admin: true } }, async () => ({
    object: 'list',
    data: deps.health.snapshot(),
  }));
  app.get('/admin/queues', { config: { admin: true } }, async () => ({
    object: 'list',
    data: deps.queues.snapshot(),
  }));
  const log = () => {
    if (deps.requestLog === undefined) {
      throw new SluiceError('not_found', 'The request log is off (requestLog.enabled: false).');
    }
    return deps.requestLog;
  };
  const read = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw new SluiceError(
        'request_log_unavailable',
        'The request-log database did not answer; try again.',
        {
          cause: err,
          retryAfterSeconds: 5,
        },
      );
    }
  };
  app.get('/admin/requests', { config: { admin: true } }, async (request) => {
    const requestLog = log();
    const filter = parseRequestsQuery(request.query as Query);
    return read(() => requestLog.listRequests(filter));
  });
  app.get('/admin/usage', { config: { admin: true } }, async (request) => {
    const requestLog = log();
    const filter = parseUsageQuery(request.query as Query, Date.now());
    return read(() => requestLog.usage(filter));
  });
  app.get('/admin/request-log', { config: { admin: true } }, async () => log().stats());
  app.post('/admin/reload', { config: { admin: true } }, async () => {
    if (deps.reload === undefined)
      throw new SluiceError('not_found', 'This gateway cannot reload its config.');
    return deps.reload('POST /admin/reload');
  });
  app.get('/admin/limits', { config: { admin: true } }, async () => {
    const store = deps.limiter.store;
    const sample = deps.shedder.lastSample;
    return {
      store: store.active,
      redisConfigured: store.hasRedis,
      liveInstances: store.instances,
      instanceId: deps.limiter.instanceId,
      leasesHeld: deps.limiter.liveLeases,
      worker: {
        shedLevel: deps.shedder.level,
        shedding: ['batch', 'standard', 'critical'].slice(0, deps.shedder.level),
        eventLoopDelayMs: sample ? Math.round(sample.eventLoopDelayMs * 10) / 10 : null,
        utilization: sample ? Math.round(sample.utilization * 1000) / 1000 : null,
      },
    };
  });
}
