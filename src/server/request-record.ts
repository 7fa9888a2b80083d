/**
 * What a request leaves behind when it ends: its status as logged (499 for a client that left, a
 * cut stream's SSE error status), the RED, token and cost metrics, its trace span, its request-log
 * row and its access-log line. Called once per request by the app's close hook, after the request's
 * holds (slot, limiter, snapshot) are given back.
 */
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { RequestLog } from '../requestlog/request-log.ts';
import { costOf } from '../requestlog/row.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import { sseErrorStatus } from '../upstream/relay.ts';
import { clientErrorCode } from './error-handler.ts';

export interface RecorderDeps {
  readonly metrics: Metrics;
  readonly tracing: Tracing;
  readonly accessLog: Logger;
  /** Where each request's row goes; none: no rows. */
  readonly requestLog: RequestLog | undefined;
}

export function createRequestRecorder(
  deps: RecorderDeps,
): (request: FastifyRequest, status: number, completed: boolean) => void {
  const { metrics, tracing, accessLog, requestLog } = deps;
  return (request, status, completed) => {
    const ctx = request.sluice;
    const durationMs = performance.now() - ctx.startedAt;
    // A request the HTTP layer cut (its body too slow: 408) is not a client that went away.
    if (!completed && ctx.errorCode === undefined)
      ctx.errorCode = clientErrorCode(request.raw.socket) ?? 'client_closed_request';
    const route = ctx.route ?? request.routeOptions.url ?? 'unmatched';
    const model = ctx.model ?? (ctx.tenant ? 'unknown' : '');
    // 499 when the client left; a stream cut short (its head said 200) with its SSE error's status.
    const logged =
      !completed && ctx.errorCode === 'client_closed_request'
        ? 499
        : ctx.truncated
          ? sseErrorStatus(ctx.errorCode, status)
          : status;
    metrics.hot.requests.get(route, model, String(logged), ctx.errorCode ?? '').inc();
    metrics.hot.duration.get(route, model).observe(durationMs / 1000);
    let costUsd: number | null = null;
    if (ctx.usage) {
      // Bounded by the `metrics` settings: past them, tenants share tenant="_other".
      const tenant = ctx.tenant ? metrics.tenantLabel(ctx.runtime.config.metrics, ctx.tenant.name) : '';
      metrics.hot.tokens.get(tenant, model, 'prompt').inc(ctx.usage.promptTokens);
      metrics.hot.tokens.get(tenant, model, 'completion').inc(ctx.usage.completionTokens);
      costUsd = costOf(ctx.served?.pricing, ctx.usage.promptTokens, ctx.usage.completionTokens);
      if (costUsd !== null) metrics.hot.cost.get(tenant, model).inc(costUsd);
    }
    if (ctx.fallback !== undefined && completed && status < 400) {
      metrics.fallbacks.inc({ model, fallback: ctx.fallback });
    }
    if (route === '/healthz' || route === '/readyz' || route === '/metrics') return;
    ctx.trace ??= tracing.startRequest(`${request.method} ${route}`, request.headers.traceparent);
    const traceId = ctx.trace.traceId;
    if (tracing.enabled) {
      ctx.trace.end(
        {
          'sluice.request_id': request.id,
          'sluice.tenant': ctx.tenant?.name ?? '',
          'sluice.model': ctx.model ?? '',
          'sluice.deployment': ctx.deployment ?? '',
          'sluice.attempts': ctx.attempts,
          'sluice.fallback': ctx.fallback ?? '',
          'sluice.error_code': ctx.errorCode ?? '',
          'sluice.stream': ctx.stream,
          'sluice.queue_wait_ms': ctx.queueWaitMs ?? 0,
          'gen_ai.usage.input_tokens': ctx.usage?.promptTokens ?? 0,
          'gen_ai.usage.output_tokens': ctx.usage?.completionTokens ?? 0,
        },
        logged,
      );
    }
    if (requestLog !== undefined && ctx.tenant !== undefined) {
      const tokensIn = ctx.usage?.promptTokens ?? null;
      const tokensOut = ctx.usage?.completionTokens ?? null;
      requestLog.record({
        requestId: request.id,
        createdAtMs: Math.round(performance.timeOrigin + ctx.startedAt),
        tenant: ctx.tenant.name,
        route,
        model: ctx.model ?? null,
        deployment: ctx.deployment ?? null,
        provider: ctx.served?.provider.name ?? null,
        region: ctx.served?.provider.region ?? null,
        status: logged,
        errorCode: ctx.errorCode ?? null,
        attempts: ctx.attempts,
        fallback: ctx.fallback ?? null,
        queueWaitMs: ctx.queueWaitMs ?? null,
        ttftMs: ctx.firstByteMs ?? null,
        totalMs: durationMs,
        tokensIn,
        tokensOut,
        costUsd,
        traceId,
        streamed: ctx.stream,
        truncated: ctx.truncated,
      });
    }
    accessLog.info(
      {
        requestId: request.id,
        traceId,
        tenant: ctx.tenant?.name,
        method: request.method,
        route,
        model: ctx.model,
        deployment: ctx.deployment,
        attempts: ctx.attempts || undefined,
        fallback: ctx.fallback,
        status: logged,
        code: ctx.errorCode,
        stream: ctx.stream,
        truncated: ctx.truncated || undefined,
        durationMs: Math.round(durationMs * 1000) / 1000,
        queueWaitMs: ctx.queueWaitMs === undefined ? undefined : Math.round(ctx.queueWaitMs * 1000) / 1000,
        firstByteMs: ctx.firstByteMs === undefined ? undefined : Math.round(ctx.firstByteMs * 1000) / 1000,
        promptTokens: ctx.usage?.promptTokens,
        completionTokens: ctx.usage?.completionTokens,
      },
      'request',
    );
  };
}
