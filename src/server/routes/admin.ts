import type { FastifyInstance } from 'fastify';
import type { Limiter } from '../../limits/limiter.ts';
import type { WorkerShedder } from '../../limits/worker-shedder.ts';
import type { AdmissionQueues } from '../../queue/queues.ts';
import type { HealthRegistry } from '../../resilience/health.ts';

export interface AdminDeps {
  readonly health: HealthRegistry;
  readonly limiter: Limiter;
  readonly shedder: WorkerShedder;
  readonly queues: AdmissionQueues;
}

/**
 * GET /admin/breakers: each deployment's breaker state, counts in the current window and load.
 * GET /admin/limits: where limits are decided now, this instance's leases and its shed level.
 * GET /admin/queues: each model's admission queue on this instance.
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
