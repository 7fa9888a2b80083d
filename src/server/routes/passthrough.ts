/**
 * Every /v1/* request that is not an exact gateway route lands here. It is passed through to the
 * `passthrough.provider` only when all of these hold, and otherwise answered 404 (or 405 with an
 * `allow` header) in OpenAI shape without touching the provider:
 *   - the path has a canonical spelling (src/server/path-normalise.ts);
 *   - it is not an inference path, nor under one, in any spelling (those are served metered, or
 *     not at all: src/routing/passthrough-rules.ts);
 *   - a `passthrough.routes` pattern opens it to this tenant, with this method;
 *   - the tenant's request rate and concurrency limits admit it (Limiter.admitTenant).
 * The canonical path is what goes upstream, so the provider sees exactly what was allowed. The
 * client's Sluice key and cookies are swapped for the provider's headers. A provider 401/403 is
 * 502 upstream_auth_failed and other provider errors are read (bounded) into OpenAI shape, as on
 * the inference path; successful bodies (file contents, lists) stream through untouched.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { PassthroughConfig } from '../../config/schema.ts';
import { SluiceError } from '../../errors/sluice-error.ts';
import type { Limiter } from '../../limits/limiter.ts';
import { inferencePath, PassthroughRules } from '../../routing/passthrough-rules.ts';
import { discardBody, headerText, readBounded } from '../../upstream/call.ts';
import { classifyUpstreamError, providerErrorFromResponse, UpstreamAbort } from '../../upstream/classify.ts';
import type { UpstreamPools } from '../../upstream/pools.ts';
import type { DrainCut } from '../drain-cut.ts';
import { normalisePath } from '../path-normalise.ts';

export interface PassthroughDeps {
  readonly pools: UpstreamPools;
  readonly limiter: Limiter;
  /** Where requests register so a drain that times out ends them with shutting_down. */
  readonly drain: DrainCut;
}

const PREFIX = '/v1';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
/** Provider error bodies are small; past this they are cut before parsing (as on inference). */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** Client headers that never reach a provider: credentials, and hop-by-hop headers. */
const REQUEST_STRIPPED = new Set([
  'authorization',
  'cookie',
  'x-api-key',
  'api-key',
  'openai-organization',
  'openai-project',
  'host',
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'content-length',
]);

/**
 * Provider headers that never reach a client: hop-by-hop ones, the provider account's identity
 * and its rate limits (the tenant's own x-ratelimit-* headers are Sluice's), its cookies, and its
 * request id (the client gets Sluice's).
 */
const RESPONSE_STRIPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'set-cookie',
  'openai-organization',
  'openai-project',
  'x-request-id',
]);

/** Compiled rules per config section (the config is frozen, so its section is a stable key). */
const compiled = new WeakMap<PassthroughConfig, PassthroughRules>();

export async function registerPassthrough(app: FastifyInstance, deps: PassthroughDeps): Promise<void> {
  await app.register(async (scope) => {
    // Bodies are streamed to the provider as they come (file uploads), never parsed here.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    scope.route({
      method: METHODS,
      url: `${PREFIX}/*`,
      config: { auth: true },
      handler: (request, reply) => passThrough(request, reply, deps),
    });
  });
}

async function passThrough(request: FastifyRequest, reply: FastifyReply, deps: PassthroughDeps) {
  const ctx = request.sluice;
  const runtime = ctx.runtime;
  const url = request.raw.url ?? '';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const normal = rawPath.startsWith(`${PREFIX}/`) ? normalisePath(rawPath.slice(PREFIX.length)) : undefined;
  if (!normal?.ok) throw notFound(request, rawPath);

  const inference = inferencePath(normal.segments);
  if (inference) {
    if (inference.exact && request.method !== 'POST') {
      reply.header('allow', 'POST');
      throw new SluiceError(
        'method_not_allowed',
        `${request.method} is not allowed on ${PREFIX}${inference.path}; it takes POST only.`,
      );
    }
    // A POST in another spelling, or a path under an inference path (stored completions and
    // responses belong to the whole provider account): never passed through.
    throw notFound(request, rawPath);
  }

  const section = runtime.config.passthrough;
  const provider = runtime.passthrough;
  if (!section || !provider) throw notFound(request, rawPath);
  let rules = compiled.get(section);
  if (!rules) {
    rules = new PassthroughRules(section);
    compiled.set(section, rules);
  }
  const match = rules.match(normal.segments, request.method, ctx.tenant!.name);
  if (match.kind === 'not_found') throw notFound(request, rawPath);
  if (match.kind === 'method_not_allowed') {
    reply.header('allow', match.allow);
    throw new SluiceError(
      'method_not_allowed',
      `${request.method} is not allowed on ${PREFIX}${normal.path}; allowed: ${match.allow}.`,
    );
  }
  const deploymentId = `${provider.name}/passthrough`;
  ctx.route = match.route;
  ctx.deployment = deploymentId;

  // Limiter layers 2 and 3 (the worker shedder ran in the request hook); settled by finish().
  const admission = await deps.limiter.admitTenant({ runtime, tenant: ctx.tenant! }, (headers) =>
    reply.headers(headers),
  );
  if (ctx.finished) {
    admission?.settle(undefined, false);
    throw new SluiceError('client_closed_request', 'The client closed the connection.');
  }
  ctx.admission = admission;

  // The provider's timeout ladder bounds the exchange: connect (the pool), response headers
  // (firstToken), silence in the response body (chunkGap), and the whole of it (total).
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new UpstreamAbort('total_timeout')),
    provider.timeouts.totalTimeoutMs,
  );
  ctx.onClientGone = () => controller.abort(new UpstreamAbort('client_closed_request'));
  // The drain's cut: a request still waiting gets 503 shutting_down; a relayed answer is cut, and
  // its log line and row say Sluice cut it, not the client.
  deps.drain.add(controller);
  controller.signal.addEventListener('abort', () => {
    if (!isShutdownCut(controller.signal.reason)) return;
    ctx.errorCode ??= 'shutting_down';
    if (reply.raw.headersSent) ctx.truncated = true;
  });
  const cleanup = () => {
    clearTimeout(timer);
    deps.drain.delete(controller);
    ctx.onClientGone = undefined;
  };
  reply.raw.once('close', cleanup);

  const body = request.body instanceof Readable ? request.body : undefined;
  const headers = upstreamHeaders(request.headers, provider.headers, body !== undefined);
  ctx.attempts = 1;
  reply.header('x-sluice-deployment', deploymentId);
  let res: Awaited<ReturnType<UpstreamPools['request']>>;
  try {
    res = await deps.pools.request({
      origin: provider.origin,
      // The canonical path, not the client's spelling; the query string goes as sent.
      path: `${provider.basePath}${normal.path}${q < 0 ? '' : url.slice(q)}`,
      method: request.method as 'GET',
      headers,
      body,
      signal: controller.signal,
      headersTimeout: provider.timeouts.firstTokenTimeoutMs,
      bodyTimeout: provider.timeouts.chunkGapTimeoutMs,
    });
  } catch (err) {
    cleanup();
    throw classifyUpstreamError(err, deploymentId, controller.signal);
  }

  if (res.statusCode >= 400) {
    if (res.statusCode === 401 || res.statusCode === 403) {
      // The provider refused the gateway's key. Its body can quote part of that key: never read.
      discardBody(res.body);
      cleanup();
      throw providerErrorFromResponse(res.statusCode, '', undefined);
    }
    let text = '';
    try {
      // Stays when readBounded stops listening at its bound (and destroys the body).
      res.body.on('error', ignore);
      const raw = decoded(res.body, res.headers['content-encoding']);
      text = (await readBounded(raw, MAX_ERROR_BODY_BYTES, deploymentId, controller.signal, true)).toString(
        'utf8',
      );
    } catch (err) {
      if (controller.signal.aborted) {
        cleanup();
        throw classifyUpstreamError(err, deploymentId, controller.signal);
      }
    } finally {
      // A decoder stops reading at the bound; the provider's body behind it is given up too.
      discardBody(res.body);
    }
    cleanup();
    throw providerErrorFromResponse(
      res.statusCode,
      text,
      headerText(res.headers['retry-after']),
      headerText(res.headers['retry-after-ms']),
    );
  }

  reply.code(res.statusCode);
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || RESPONSE_STRIPPED.has(name) || name.startsWith('x-ratelimit-')) continue;
    reply.header(name, value);
  }
  return reply.send(res.body);
}

function upstreamHeaders(
  client: IncomingHttpHeaders,
  provider: Readonly<Record<string, string>>,
  withBody: boolean,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(client)) {
    if (value === undefined || REQUEST_STRIPPED.has(name) || name.startsWith('x-sluice-')) continue;
    out[name] = value;
  }
  // The provider's own headers (its Authorization above all) win; its JSON content-type default
  // does not: the body is the client's, untouched.
  for (const [name, value] of Object.entries(provider)) {
    if (name !== 'content-type') out[name] = value;
  }
  if (withBody && client['content-length'] !== undefined) out['content-length'] = client['content-length'];
  if (!withBody) delete out['content-type'];
  return out;
}

/** A provider error body as text: the client's accept-encoding was forwarded, so it may be compressed. */
function decoded(body: Readable, encoding: string | string[] | undefined): Readable {
  const codec = typeof encoding === 'string' ? encoding.trim().toLowerCase() : '';
  const decoder =
    codec === 'gzip' || codec === 'x-gzip'
      ? createGunzip()
      : codec === 'deflate'
        ? createInflate()
        : codec === 'br'
          ? createBrotliDecompress()
          : undefined;
  if (!decoder) return body;
  body.on('error', (err) => decoder.destroy(err));
  return body.pipe(decoder);
}

function ignore(): void {}

function isShutdownCut(reason: unknown): boolean {
  return reason instanceof UpstreamAbort && reason.kind === 'shutting_down';
}

function notFound(request: FastifyRequest, path: string): SluiceError {
  return new SluiceError('not_found', `No endpoint ${request.method} ${path.slice(0, 200)} on this gateway.`);
}
