import type { FastifyInstance } from 'fastify';
import type { HealthRegistry } from '../../resilience/health.ts';

/** GET /admin/breakers: each deployment's breaker state, counts in the current window and load. */
export function registerAdminRoutes(app: FastifyInstance, health: HealthRegistry): void {
  app.get('/admin/breakers', { config: { admin: true } }, async () => ({
    object: 'list',
    data: health.snapshot(),
  }));
}
