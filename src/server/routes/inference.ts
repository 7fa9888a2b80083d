/**
 * POST /v1/chat/completions, /v1/completions, /v1/embeddings: validate, resolve the model, let
 * execute() find a deployment that answers (retries and fallbacks included), then relay the
 * answer: JSON whole, streams chunk by chunk.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors/sluice-error.ts';
import type { Limiter } from '../../limits/limiter.ts';
import type { Endpoint } from '../../providers/openai.ts';
import type { AdmissionQueues } from '../../queue/queues.ts';
import { type Answer, execute, type OutboundGate } from '../../resilience/execute.ts';
import type { HealthRegistry } from '../../resilience/health.ts';
import type { Metrics } from '../../telemetry/metrics.ts';
import { UpstreamAbort } from '../../upstream/classify.ts';
import type { UpstreamPools } from '../../upstream/pools.ts';
import { relaySse } from '../../upstream/relay.ts';
import { cutError, type DrainCut } from '../drain-cut.ts';
import { chatCompletionsBody, completionsBody, embeddingsBody } from '../schemas.ts';

export interface InferenceDeps {
  readonly pools: UpstreamPools;
  readonly health: HealthRegistry;
  readonly metrics: Metrics;
  readonly limiter: Limiter;
  readonly queues: AdmissionQueues;
  /** Where requests register so a drain that times out can end them with shutting_down. */
  readonly drain: DrainCut;
}

/** The client's own deadline for the whole request, in ms; capped by the model's totalTimeoutMs. */
export const TIMEOUT_HEADER = 'x-sluice-timeout-ms';

const ROUTES: ReadonlyArray<{ url: string; endpoint: Endpoint; schema: object }> = [
  { url: '/v1/chat/completions', endpoint: 'chat.completions', schema: chatCompletionsBody },
  { url: '/v1/completions', endpoint: 'completions', schema: completionsBody },
  { url: '/v1/embeddings', endpoint: 'embeddings', schema: embeddingsBody },
];

export function registerInferenceRoutes(app: FastifyInstance, deps: InferenceDeps): void {
  for (const { url, endpoint, schema } of ROUTES) {
    app.post(url, { schema: { body: schema }, config: { auth: true } }, (request, reply) =>
      forward(endpoint, request, reply, deps),
    );
  }
}

async function forward(
  endpoint: Endpoint,
  request: FastifyRequest,
  reply: FastifyReply,
  deps: InferenceDeps,
) {
  const ctx = request.sluice;
  const body = request.body as Record<string, unknown>;
  const modelName = body.model as string;
  const model = ctx.runtime.models.get(modelName);
  if (!model) {
    throw new SluiceError('model_not_found', `The model '${modelName}' does not exist on this gateway.`, {
      param: 'model',
    });
  }
  ctx.model = model.name;
  ctx.stream = body.stream === true && endpoint !== 'embeddings';
  const budgetMs = Math.min(model.totalTimeoutMs, clientTimeoutMs(request));
  const { limiter } = deps;
  const runtime = ctx.runtime;
  // Limiter layers 2-4 (layer 1, the worker shedder, ran in the request hook).
  const admission = limiter.applies(runtime, ctx.tenant!.name, model.name)
    ? await limiter.admit(
        { runtime, tenant: ctx.tenant!, priority: ctx.priority, model, endpoint, body },
        (headers) => reply.headers(headers),
      )
    : undefined;
  // The client may have gone while the limiter decided: then nothing is held on its behalf.
  if (ctx.finished) {
    admission?.settle(undefined, false);
    throw new SluiceError('client_closed_request', 'The client closed the connection.');
  }
  ctx.admission = admission;
  const outbound: OutboundGate | undefined = limiter.hasOutboundBudgets(runtime)
    ? {
        spentFor: (provider) => limiter.outboundSpentFor(provider),
        take: (provider) =>
          limiter.outbound(
            runtime,
            provider,
            admission?.estimate ?? limiter.estimate({ runtime, endpoint, body }),
          ),
        refund: (hold) => limiter.refund(hold),
      }
    : undefined;

  const controller = new AbortController();
  const deadlineTimer = setTimeout(() => controller.abort(new UpstreamAbort('total_timeout')), budgetMs);
  // A client that goes away aborts the upstream call at once, whatever phase it is in.
  ctx.onClientGone = () => controller.abort(new UpstreamAbort('client_closed_request'));
  deps.drain.add(controller);
  const cleanup = () => {
    clearTimeout(deadlineTimer);
    ctx.onClientGone = undefined;
    deps.drain.delete(controller);
  };

  // The admission queue: one of the model's maxConcurrent slots now, or a bounded wait in line.
  try {
    const slot = deps.queues.acquire({
      model,
      priority: ctx.priority,
      tenant: ctx.tenant!.name,
      deadline: ctx.startedAt + budgetMs,
      signal: controller.signal,
    });
    ctx.slot = slot instanceof Promise ? await slot : slot;
  } catch (err) {
    cleanup();
    throw cutError(controller.signal, err);
  }
  ctx.queueWaitMs = ctx.slot.waitedMs;
  if (ctx.finished) {
    // The client went away just as the slot was granted: give it to the next in line.
    cleanup();
    ctx.slot.release();
    throw new SluiceError('client_closed_request', 'The client closed the connection.');
  }

  let answer: Answer;
  try {
    answer = await execute(
      {
        endpoint,
        body,
        requestId: request.id,
        trace: ctx.trace,
        runtime: ctx.runtime,
        model,
        deadline: ctx.startedAt + budgetMs,
        signal: controller.signal,
        progress: ctx,
        outbound,
      },
      deps,
    );
  } catch (err) {
    cleanup();
    setOutcomeHeaders(reply, ctx);
    throw err;
  }
  setOutcomeHeaders(reply, ctx);

  if (answer.kind === 'json') {
    cleanup();
    ctx.usage = answer.usage;
    return reply.code(answer.status).type('application/json').send(answer.payload);
  }

  ctx.firstByteMs = performance.now() - ctx.startedAt;
  deps.metrics.hot.ttft.get(model.name).observe(ctx.firstByteMs / 1000);
  // The stream is written straight to the socket (no Readable wrapper and pipe in between).
  reply.hijack();
  reply.raw.writeHead(200, {
    ...(reply.getHeaders() as OutgoingHttpHeaders),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
  });
  relaySse(answer, reply.raw, {
    deploymentId: answer.deployment.id,
    chunkGapTimeoutMs: answer.deployment.timeouts.chunkGapTimeoutMs,
    gaps: deps.metrics.hot.chunkGap.get(answer.deployment.id),
    onChunkGap: () => answer.abort(new UpstreamAbort('chunk_gap_timeout')),
    onEnd(error) {
      cleanup();
      answer.finish(error);
      ctx.usage = answer.tap.usage;
      if (error) {
        ctx.errorCode = error.code;
        if (error.code !== 'client_closed_request') {
          ctx.truncated = true;
          deps.metrics.streamsTruncated.inc({ deployment: answer.deployment.id, code: error.code });
        }
      }
    },
  });
  return reply;
}

function setOutcomeHeaders(reply: FastifyReply, ctx: FastifyRequest['sluice']): void {
  if (ctx.deployment !== undefined) reply.header('x-sluice-deployment', ctx.deployment);
  reply.header('x-sluice-attempts', String(ctx.attempts));
  reply.header('x-sluice-fallback', ctx.fallback ?? 'none');
}

function clientTimeoutMs(request: FastifyRequest): number {
  const raw = request.headers[TIMEOUT_HEADER];
  if (raw === undefined) return Number.POSITIVE_INFINITY;
  const value = Number(raw);
  if (typeof raw !== 'string' || !/^\d{1,8}$/.test(raw.trim()) || value < 1 || value > 86_400_000) {
    throw new SluiceError(
      'invalid_request',
      `The ${TIMEOUT_HEADER} header must be a whole number of milliseconds between 1 and 86400000.`,
      { param: TIMEOUT_HEADER },
    );
  }
  return value;
}
