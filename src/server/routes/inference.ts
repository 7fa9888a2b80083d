/**
 * POST /v1/chat/completions, /v1/completions, /v1/embeddings: route the model, call one
 * deployment, relay the answer (JSON whole, streams chunk by chunk).
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors/sluice-error.ts';
import { buildUpstreamRequest, type Endpoint } from '../../providers/openai.ts';
import { pickWeighted } from '../../routing/select.ts';
import type { Metrics } from '../../telemetry/metrics.ts';
import { callUpstream, readBounded } from '../../upstream/call.ts';
import { UpstreamAbort } from '../../upstream/classify.ts';
import type { UpstreamPools } from '../../upstream/pools.ts';
import { awaitFirstToken, relaySse } from '../../upstream/relay.ts';
import { SseTap } from '../../upstream/sse-tap.ts';
import { extractUsage } from '../../upstream/usage.ts';
import { chatCompletionsBody, completionsBody, embeddingsBody } from '../schemas.ts';

export interface InferenceDeps {
  readonly pools: UpstreamPools;
  readonly metrics: Metrics;
}

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
  const route = ctx.runtime.models.get(modelName);
  if (!route) {
    throw new SluiceError('model_not_found', `The model '${modelName}' does not exist on this gateway.`, {
      param: 'model',
    });
  }
  ctx.model = route.name;
  const deployment = pickWeighted(route.deployments);
  ctx.deployment = deployment.id;
  const upstreamReq = buildUpstreamRequest(endpoint, body, deployment, { requestId: request.id });
  ctx.stream = upstreamReq.stream;
  reply.header('x-sluice-deployment', deployment.id);

  const controller = new AbortController();
  const signal = controller.signal;
  const timer = setTimeout(
    () => controller.abort(new UpstreamAbort('total_timeout')),
    deployment.timeouts.totalTimeoutMs,
  );
  // A client that goes away aborts the upstream call at once, whatever phase it is in.
  const onClose = () => {
    if (!reply.raw.writableFinished) controller.abort(new UpstreamAbort('client_closed_request'));
  };
  reply.raw.once('close', onClose);
  const upstreamStart = performance.now();
  const done = (outcome: string) => {
    clearTimeout(timer);
    reply.raw.removeListener('close', onClose);
    deps.metrics.upstreamDuration.observe(
      { deployment: deployment.id, outcome },
      (performance.now() - upstreamStart) / 1000,
    );
  };

  let res: Awaited<ReturnType<typeof callUpstream>>;
  try {
    res = await callUpstream(deps.pools, upstreamReq, deployment.timeouts, deployment.id, signal);
  } catch (err) {
    done((err as SluiceError).code ?? 'error');
    throw err;
  }

  if (!upstreamReq.stream) {
    let payload: Buffer;
    try {
      payload = await readBounded(
        res.body,
        ctx.runtime.config.server.maxResponseBytes,
        deployment.id,
        signal,
      );
    } catch (err) {
      done((err as SluiceError).code ?? 'error');
      throw err;
    }
    done('ok');
    ctx.usage = extractUsage(payload);
    return reply.code(res.statusCode).type('application/json').send(payload);
  }

  const tap = new SseTap(!upstreamReq.clientWantsUsage);
  const chunks = (res.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  // Headers may come early and tokens late: the first-token clock runs until real output arrives.
  const remaining = deployment.timeouts.firstTokenTimeoutMs - (performance.now() - upstreamStart);
  const firstTokenTimer = setTimeout(
    () => controller.abort(new UpstreamAbort('first_token_timeout')),
    Math.max(0, remaining),
  );
  let held: Buffer[];
  try {
    held = await awaitFirstToken(chunks, tap, deployment.id, signal);
  } catch (err) {
    res.body.destroy();
    done((err as SluiceError).code ?? 'error');
    throw err;
  } finally {
    clearTimeout(firstTokenTimer);
  }
  ctx.firstByteMs = performance.now() - ctx.startedAt;
  const relay = relaySse(res.body, chunks, held, tap, deployment.id, signal, {
    onEnd(error) {
      done(error ? error.code : 'ok');
      ctx.usage = tap.usage;
      if (error) {
        ctx.errorCode = error.code;
        if (error.code !== 'client_closed_request') {
          ctx.truncated = true;
          deps.metrics.streamsTruncated.inc({ deployment: deployment.id, code: error.code });
        }
      }
    },
  });
  reply
    .code(200)
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('x-accel-buffering', 'no');
  return reply.send(Readable.from(relay, { objectMode: false, highWaterMark: 16 * 1024 }));
}
