/**
 * Every other /v1/* path (files, batches, fine-tuning, ...) is proxied untouched to the provider
 * that `passthrough.provider` names, through the same pooled dispatcher, with the client's Sluice
 * key swapped for the provider's key. Without that setting such paths get 404 in OpenAI shape.
 * The provider is read from the request's config snapshot, so a reload can change it.
 */
import httpProxy from '@fastify/http-proxy';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors/sluice-error.ts';
import type { Runtime } from '../../runtime.ts';
import { classifyUpstreamError } from '../../upstream/classify.ts';
import type { UpstreamPools } from '../../upstream/pools.ts';

const PREFIX = '/v1';
/** Client headers that must never reach a provider. */
const STRIPPED = ['authorization', 'cookie', 'x-api-key', 'api-key', 'host'];

export async function registerPassthrough(
  app: FastifyInstance,
  pools: UpstreamPools,
  current: () => Runtime,
): Promise<void> {
  await app.register(httpProxy, {
    prefix: PREFIX,
    // rewritePrefix stays '' so the provider's own base path can be put in front by preRewrite.
    upstream: '',
    undici: pools as never,
    disableRequestLogging: true,
    config: { auth: true },
    preHandler: async (request: FastifyRequest) => {
      const provider = current().passthrough;
      if (!provider) {
        throw new SluiceError(
          'not_found',
          `No endpoint ${request.method} ${request.url.split('?')[0]} on this gateway.`,
        );
      }
      request.sluice.deployment = `${provider.name}/passthrough`;
    },
    // /v1/files -> <provider base path>/files. preRewrite sees no request, but it runs in the same
    // tick as getUpstream, so both read the same config snapshot.
    preRewrite: (url: string) =>
      `${PREFIX}${current().passthrough?.basePath ?? ''}${url.slice(PREFIX.length)}`,
    replyOptions: {
      getUpstream: (_request: FastifyRequest) => current().passthrough!.origin,
      rewriteRequestHeaders: (request: FastifyRequest, headers: Record<string, unknown>) => {
        const provider = current().passthrough!;
        const out: Record<string, unknown> = {};
        for (const [name, value] of Object.entries(headers)) {
          if (!STRIPPED.includes(name) && !name.startsWith('x-sluice-')) out[name] = value;
        }
        Object.assign(out, provider.headers);
        out['x-request-id'] = request.id;
        // The body is streamed untouched; only the JSON-path default content-type is not forced.
        if (headers['content-type'] !== undefined) out['content-type'] = headers['content-type'];
        else delete out['content-type'];
        return out;
      },
      onError: (reply: FastifyReply, { error }: { error: Error }) => {
        const provider = current().passthrough;
        reply.send(
          classifyUpstreamError(
            (error as { cause?: unknown }).cause ?? error,
            `${provider?.name}/passthrough`,
          ),
        );
      },
    },
  } as never);
}
