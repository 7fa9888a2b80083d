import type { FastifyInstance } from 'fastify';

/** One dependency as /readyz reports it. */
export interface DependencyState {
  /** What it is doing now, one word: `redis`, `local_fallback`, `up`, `spilling`, ... */
  readonly state: string;
  /** false takes the instance out of rotation (503); a degraded state may stay true. */
  readonly ready: boolean;
  /** A sentence for the operator, when the state needs one. */
  readonly detail?: string;
}

export interface ReadinessCheck {
  readonly name: string;
  /**
   * The dependency's state as this process already knows it. Checks read state, they do not call
   * the dependency: a probe every few seconds from every kubelet must not add load to a sick Redis
   * or Postgres, nor wait on one.
   */
  check(): DependencyState | Promise<DependencyState>;
}

const CHECK_TIMEOUT_MS = 2_000;

/**
 * /healthz: the process is alive (no dependency checks: a dead database must not get the pod
 * restarted). /readyz: this instance should get traffic: not draining, and no check says otherwise.
 * It reports every dependency's state in `checks` either way, so a degraded instance that stays in
 * rotation (limits on local fallback, the request log spilling) is visible in the probe's answer.
 * Before the first config has loaded the port is not open yet, which a probe sees as not ready too.
 */
export function registerHealthRoutes(
  app: FastifyInstance,
  checks: readonly ReadinessCheck[],
  isDraining: () => boolean,
): void {
  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    const results: Record<string, DependencyState> = {};
    const draining = isDraining();
    let ready = !draining;
    await Promise.all(
      checks.map(async ({ name, check }) => {
        let result: DependencyState;
        try {
          result = await withTimeout(check(), CHECK_TIMEOUT_MS);
        } catch (err) {
          result = { state: 'error', ready: false, detail: (err as Error).message.slice(0, 200) };
        }
        if (!result.ready) ready = false;
        results[name] = result;
      }),
    );
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : draining ? 'draining' : 'not_ready',
      configLoadedAt: request.sluice.runtime.loadedAt.toISOString(),
      checks: results,
    });
  });
}

function withTimeout<T>(value: T | Promise<T>, ms: number): Promise<T> {
  if (!(value instanceof Promise)) return Promise.resolve(value);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([value, timeout]).finally(() => clearTimeout(timer));
}
