import type { FastifyInstance } from 'fastify';

export interface ReadinessCheck {
  readonly name: string;
  /** Resolves when the dependency answers; rejects (or times out) when it does not. */
  check(): Promise<void>;
}

const CHECK_TIMEOUT_MS = 2_000;

/**
 * /healthz: the process is alive (no dependency checks: a dead database must not get the pod
 * restarted). /readyz: a config is loaded, the instance is not draining, and every dependency
 * answers; load balancers stop sending traffic when it fails.
 */
export function registerHealthRoutes(
  app: FastifyInstance,
  checks: readonly ReadinessCheck[],
  isDraining: () => boolean,
): void {
  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    const results: Record<string, string> = {};
    let ready = !isDraining();
    await Promise.all(
      checks.map(async ({ name, check }) => {
        try {
          await withTimeout(check(), CHECK_TIMEOUT_MS);
          results[name] = 'ok';
        } catch (err) {
          ready = false;
          results[name] = (err as Error).message.slice(0, 200);
        }
      }),
    );
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : isDraining() ? 'draining' : 'not_ready',
      configLoadedAt: request.sluice.runtime.loadedAt.toISOString(),
      checks: results,
    });
  });
}

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
