/**
 * The composition root: buildApp(runtime, deps) wires the fastify instance and returns it without
 * listening, so tests drive it with inject() or a listener on port 0, and main.ts owns sockets and
 * signals.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { Authenticator, type Credentials } from './auth/authenticator.ts';
import type { Config } from './config/schema.ts';
import { SluiceError } from './errors/sluice-error.ts';
import { createLimiter } from './limits/create.ts';
import type { Limiter } from './limits/limiter.ts';
import { startLoadSampler } from './limits/load-sampler.ts';
import { PRIORITY_HEADER, requestPriority } from './limits/priority.ts';
import { WorkerShedder, type WorkerShedderSettings } from './limits/worker-shedder.ts';
import { LiveRuntimes } from './live-runtimes.ts';
import { AdmissionQueues } from './queue/queues.ts';
import type { RequestLog } from './requestlog/request-log.ts';
import { classifyFailure } from './resilience/failure-class.ts';
import { HealthRegistry } from './resilience/health.ts';
import type { Runtime } from './runtime.ts';
import { ConnectionGuard, httpServerOptions } from './server/connection-guard.ts';
import type { RequestContext } from './server/context.ts';
import { CUT_GRACE_MS, DrainCut } from './server/drain-cut.ts';
import { clientErrorHandler, sendError } from './server/error-handler.ts';
import { exceedsJsonDepth } from './server/json-depth.ts';
import { limitsReadiness, requestLogReadiness } from './server/readiness.ts';
import { requestIdFor } from './server/request-id.ts';
import { createRequestRecorder } from './server/request-record.ts';
import { type ReloadOutcome, registerAdminRoutes } from './server/routes/admin.ts';
import { type ReadinessCheck, registerHealthRoutes } from './server/routes/health.ts';
import { registerInferenceRoutes } from './server/routes/inference.ts';
import { registerModelsRoute } from './server/routes/models.ts';
import { registerPassthrough } from './server/routes/passthrough.ts';
import type { Metrics } from './telemetry/metrics.ts';
import { BREAKER_STATE_VALUE, createMetrics } from './telemetry/metrics.ts';
import { TRACING_OFF, type Tracing } from './telemetry/tracing.ts';
import { type OriginSettings, UpstreamPools } from './upstream/pools.ts';

export interface AppDeps {
  logger: Logger;
  /** The access log (one line per request); defaults to `logger`. */
  accessLogger?: Logger;
  metrics?: Metrics;
  pools?: UpstreamPools;
  readinessChecks?: ReadinessCheck[];
  /** Defaults to one built from the config (Redis when limits.redis.url is set). */
  limiter?: Limiter;
  /** Where each request's row goes when it ends (the request log); none: no rows. */
  requestLog?: RequestLog;
  /** OpenTelemetry tracing; default off (trace ids only). */
  tracing?: Tracing;
  /** Reloads the config from where it came (serve.ts), for POST /admin/reload; none: 404. */
  reload?: (reason: string) => Promise<ReloadOutcome>;
}

export interface Gateway {
  readonly app: FastifyInstance;
  readonly metrics: Metrics;
  readonly pools: UpstreamPools;
  readonly health: HealthRegistry;
  readonly limiter: Limiter;
  readonly shedder: WorkerShedder;
  readonly queues: AdmissionQueues;
  /** The config snapshot new requests get. */
  current(): Runtime;
  /** Swap in a new compiled config; requests already running keep theirs. */
  apply(runtime: Runtime): void;
  /** Refuse new requests with 503 shutting_down (health probes keep answering). */
  startDraining(): void;
  isDraining(): boolean;
  /** Stop listening, wait for in-flight requests up to `drainTimeoutMs`, then close pools. */
  shutdown(drainTimeoutMs: number): Promise<void>;
}

export async function buildApp(initial: Runtime, deps: AppDeps): Promise<Gateway> {
  const runtime = initial;
  let draining = false;
  const metrics = deps.metrics ?? createMetrics();
  const accessLog = deps.accessLogger ?? deps.logger;
  const requestLog = deps.requestLog;
  const tracing = deps.tracing ?? TRACING_OFF;
  const record = createRequestRecorder({ metrics, tracing, accessLog, requestLog });
  const pools = deps.pools ?? new UpstreamPools();
  pools.configure(originSettings(runtime));
  metrics.setPoolSource(() => pools.stats());
  const health = new HealthRegistry(breakerCountsAsFailure, (deployment, state) =>
    metrics.breakerState.set({ deployment }, BREAKER_STATE_VALUE[state]),
  );
  health.reconcile(runtime);
  // Each request keeps the config snapshot it started with; what an older snapshot refers to
  // (deployment health, origin pools) lives until its last request ends, then is swept.
  const runtimes = new LiveRuntimes(initial, (why) => {
    if (why === 'swap') reconcileShared();
    // A retired snapshot's last request has ended. Swept a little later: the request's own code
    // may still be unwinding (an aborted retry loop) and must find what it refers to.
    else setTimeout(reconcileShared, SWEEP_GRACE_MS).unref();
  });
  function reconcileShared(): void {
    const current = runtimes.current;
    const origins = originSettings(current);
    const deployments = new Set<string>();
    for (const old of runtimes.retired()) {
      for (const [origin, settings] of originSettings(old))
        if (!origins.has(origin)) origins.set(origin, settings);
      for (const route of old.models.values()) for (const d of route.deployments) deployments.add(d.id);
    }
    pools.configure(origins);
    health.reconcile(current, deployments);
  }
  const limiter = deps.limiter ?? createLimiter(runtime.config, { metrics, log: deps.logger });
  // Take no traffic before the shared limits are reachable (bounded: a dead Redis means local limits).
  if (!(await limiter.store.waitForRedis(2_000))) {
    deps.logger.warn('limits: Redis is not reachable at start; limits are local until it is');
  }
  limiter.start(runtime);
  const shedder = new WorkerShedder(shedderSettings(runtime.config));
  const queues = new AdmissionQueues(runtime, metrics);
  let sampler: { stop(): void } | undefined;
  let samplerInterval = 0;
  const configureSampler = (config: Config) => {
    const worker = config.limits.worker;
    const interval = worker.enabled ? worker.sampleIntervalMs : 0;
    if (interval === samplerInterval) return;
    sampler?.stop();
    sampler = undefined;
    samplerInterval = interval;
    if (interval === 0) {
      shedder.reset();
      metrics.workerShedLevel.set(0);
      return;
    }
    sampler = startLoadSampler(interval, (sample) => {
      const before = shedder.level;
      const level = shedder.observe(sample);
      metrics.workerShedLevel.set(level);
      metrics.eventLoopDelay.set(sample.eventLoopDelayMs / 1000);
      metrics.eventLoopUtilization.set(sample.utilization);
      if (level !== before) {
        deps.logger.warn(
          { level, from: before, eventLoopDelayMs: sample.eventLoopDelayMs, utilization: sample.utilization },
          level > before
            ? 'worker shedder: shedding one more priority class'
            : 'worker shedder: shedding one class fewer',
        );
      }
    });
  };
  configureSampler(runtime.config);

  const server = initial.config.server;
  // Client-facing defences: who the client is, failed keys, connections per address, timeouts.
  const authenticator = new Authenticator(server, { metrics, log: deps.logger });
  const connections = new ConnectionGuard(server, { metrics, log: deps.logger });
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // One log line per request is written by finish() below, streams and aborts included.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    // No child logger per request (pino child() with redaction showed in profiles): the few
    // request-scoped log calls pass the request id themselves.
    childLoggerFactory: (logger) => logger,
    bodyLimit: server.bodyLimitBytes,
    genReqId: requestIdFor,
    requestIdHeader: false,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // Router-level failures (malformed URL, bad constraints) happen before any hook runs.
    frameworkErrors: (err, request, reply) => sendError(request, reply, err),
    // Header, request and keep-alive timeouts (src/server/connection-guard.ts says why these).
    keepAliveTimeout: server.keepAliveTimeoutMs,
    requestTimeout: server.requestTimeoutMs,
    http: httpServerOptions(server),
    // Timeouts, oversized and malformed requests, answered by Node's parser: OpenAI's shape too.
    clientErrorHandler: clientErrorHandler((code) => metrics.clientErrors.inc({ code })),
    ajv: {
      customOptions: {
        coerceTypes: false,
        removeAdditional: false,
        useDefaults: false,
        allErrors: false,
        allowUnionTypes: true,
      },
    },
  });

  connections.attach(app.server);
  app.decorateRequest('sluice', null as unknown as RequestContext);
  // The API speaks JSON only: anything else is a 415, not a string body that fails validation.
  app.removeContentTypeParser('text/plain');
  // fastify's own JSON parser (prototype-poisoning checks included), behind a nesting bound.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const maxJsonDepth = server.maxJsonDepth;
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (exceedsJsonDepth(body as string, maxJsonDepth)) {
      done(
        new SluiceError(
          'invalid_request',
          `The request body nests JSON deeper than ${maxJsonDepth} levels (server.maxJsonDepth).`,
        ),
        undefined,
      );
      return;
    }
    parseJson(request, body as string, done);
  });
  app.setErrorHandler((err, request, reply) => sendError(request, reply, err));
  app.setNotFoundHandler((request, reply) =>
    sendError(
      request,
      reply,
      new SluiceError('not_found', `No endpoint ${request.method} ${pathOf(request.url)}.`),
    ),
  );

  // A callback hook, not an async one: it runs on every request and needs no promise.
  app.addHook('onRequest', (request, reply, done) => {
    done(startRequest(request, reply));
  });

  function startRequest(request: FastifyRequest, reply: FastifyReply): SluiceError | undefined {
    const runtime = runtimes.acquire();
    const ctx: RequestContext = {
      startedAt: performance.now(),
      runtime,
      tenant: undefined,
      priority: 'standard',
      model: undefined,
      route: undefined,
      deployment: undefined,
      served: undefined,
      attempts: 0,
      fallback: undefined,
      stream: false,
      usage: undefined,
      errorCode: undefined,
      firstByteMs: undefined,
      truncated: false,
      admission: undefined,
      outboundHold: undefined,
      slot: undefined,
      queueWaitMs: undefined,
      finished: false,
      trace: undefined,
      onClientGone: undefined,
    };
    request.sluice = ctx;
    reply.header('x-request-id', request.id);
    metrics.inFlight.inc();
    reply.raw.once('close', () => {
      const completed = reply.raw.writableFinished;
      if (!completed) ctx.onClientGone?.();
      finish(request, reply.raw.statusCode, completed);
    });
    const routeConfig = request.routeOptions.config;
    if (routeConfig.auth || routeConfig.admin) {
      ctx.trace = tracing.startRequest(
        `${request.method} ${request.routeOptions.url ?? 'unmatched'}`,
        request.headers.traceparent,
      );
    }
    if (routeConfig.admin) return authenticator.admin(runtime, credentialsOf(request));
    if (!routeConfig.auth) return undefined;
    if (draining) return new SluiceError('shutting_down', 'This gateway instance is shutting down; retry.');
    const tenant = authenticator.tenant(runtime, credentialsOf(request));
    if (tenant instanceof SluiceError) return tenant;
    ctx.tenant = tenant;
    try {
      ctx.priority = requestPriority(tenant.priority, request.headers[PRIORITY_HEADER]);
    } catch (err) {
      return err as SluiceError;
    }
    // Layer 1, the worker shedder: the cheapest refusal, before the body is even read.
    if (runtime.config.limits.worker.enabled && !shedder.admits(ctx.priority)) {
      metrics.hot.limiterDecisions.get('worker', 'refused').inc();
      return new SluiceError(
        'server_overloaded',
        `This gateway instance is overloaded and is shedding ${ctx.priority} traffic; retry shortly.`,
        { retryAfterSeconds: runtime.config.limits.worker.retryAfterSeconds },
      );
    }
    return undefined;
  }

  function finish(request: FastifyRequest, status: number, completed: boolean): void {
    const ctx = request.sluice;
    ctx.finished = true;
    runtimes.release(ctx.runtime);
    metrics.inFlight.dec();
    ctx.slot?.release();
    if (ctx.admission !== undefined || ctx.outboundHold !== undefined) {
      limiter.settle(ctx.admission, ctx.outboundHold, ctx.usage, completed && status < 400);
    }
    record(request, status, completed);
  }

  // The dependencies this app owns report their state on /readyz; main.ts adds its own (config).
  const readiness = [limitsReadiness(limiter.store, () => runtimes.current.config)];
  if (requestLog !== undefined) readiness.push(requestLogReadiness(() => requestLog.writer.stats()));
  registerHealthRoutes(app, [...readiness, ...(deps.readinessChecks ?? [])], () => draining);
  // With server.metricsPort, /metrics is served there (main.ts) and not on the API's port.
  if (initial.config.server.metricsPort === undefined) {
    app.get('/metrics', async (_request, reply) =>
      reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
    );
  }
  registerModelsRoute(app);
  const drain = new DrainCut();
  registerInferenceRoutes(app, { pools, health, metrics, limiter, queues, drain });
  registerAdminRoutes(app, { health, limiter, shedder, queues, requestLog, reload: deps.reload });
  await registerPassthrough(app, { pools, limiter, drain });

  return {
    app,
    metrics,
    pools,
    health,
    limiter,
    shedder,
    queues,
    current: () => runtimes.current,
    apply(next: Runtime) {
      // First: it is the one that can refuse the config (a trusted proxy BlockList rejects).
      authenticator.configure(next.config.server);
      connections.configure(next.config.server);
      runtimes.swap(next);
      limiter.apply(next);
      queues.configure(next);
      shedder.configure(shedderSettings(next.config));
      configureSampler(next.config);
    },
    startDraining() {
      draining = true;
    },
    isDraining: () => draining,
    async shutdown(drainTimeoutMs: number) {
      draining = true;
      const closing = app.close();
      // server.close() closes the connections idle at that moment only; a keep-alive connection
      // whose stream ends during the drain would otherwise hold the process until the timeout.
      const sweeper = setInterval(() => app.server.closeIdleConnections(), 100);
      let force: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        // Never a silent cut: each request still running ends saying shutting_down (a stream with
        // an SSE error event, the others with a 503) and its upstream call is aborted; the
        // connections left are closed once those had a moment to reach the client.
        const cut = drain.cutAll();
        app.log.warn({ drainTimeoutMs, cut }, 'drain timeout reached; ending the requests still running');
        if (cut === 0) app.server.closeAllConnections();
        else force = setTimeout(() => app.server.closeAllConnections(), CUT_GRACE_MS);
      }, drainTimeoutMs);
      try {
        await closing;
      } finally {
        clearInterval(sweeper);
        clearTimeout(timer);
        clearTimeout(force);
        sampler?.stop();
        health.shutdown();
        await Promise.all([pools.close(), limiter.close()]);
      }
    },
  };
}

function shedderSettings(config: Config): WorkerShedderSettings {
  const w = config.limits.worker;
  return {
    maxEventLoopDelayMs: w.maxEventLoopDelayMs,
    maxUtilization: w.maxUtilization,
    escalateAfterSamples: w.escalateAfterSamples,
    recoverAfterSamples: w.recoverAfterSamples,
    recoverRatio: w.recoverRatio,
  };
}

/**
 * Only a provider's overloaded and transient failures say a deployment is unhealthy (429s when
 * configured). Anything else, a bug in Sluice above all, is never a mark against a deployment.
 */
function breakerCountsAsFailure(countRateLimits: boolean): (err: unknown) => boolean {
  return (err) => {
    if (!(err instanceof SluiceError)) return false;
    const failure = classifyFailure(err);
    return (
      failure === 'overloaded' || failure === 'transient' || (countRateLimits && failure === 'rate_limited')
    );
  };
}

/** What the authenticator looks at: the key, the socket's address, X-Forwarded-For. */
function credentialsOf(request: FastifyRequest): Credentials {
  return {
    authorization: request.headers.authorization,
    socketAddress: request.socket.remoteAddress,
    forwardedFor: request.headers['x-forwarded-for'],
  };
}

/** How long after a retired config snapshot's last request its deployments and pools are swept. */
const SWEEP_GRACE_MS = 1_000;

/** Pool settings per origin: providers sharing an origin share one pool sized for all of them. */
export function originSettings(runtime: Runtime): Map<string, OriginSettings> {
  const out = new Map<string, OriginSettings>();
  for (const p of runtime.providers.values()) {
    const seen = out.get(p.origin);
    out.set(p.origin, {
      connections: (seen?.connections ?? 0) + p.connections,
      connectTimeoutMs: Math.min(
        seen?.connectTimeoutMs ?? Number.POSITIVE_INFINITY,
        p.timeouts.connectTimeoutMs,
      ),
    });
  }
  return out;
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return (q < 0 ? url : url.slice(0, q)).slice(0, 200);
}
