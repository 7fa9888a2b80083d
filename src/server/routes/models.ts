import type { FastifyInstance } from 'fastify';

/** GET /v1/models: the configured public model names, rendered once per config. */
export function registerModelsRoute(app: FastifyInstance): void {
  app.get('/v1/models', { config: { auth: true } }, (request, reply) =>
    reply.type('application/json; charset=utf-8').send(request.sluice.runtime.modelList),
  );
}
