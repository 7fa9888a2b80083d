/**
 * The OpenAI wire format, shared by every OpenAI-compatible provider (and the fake provider).
 * Pure: it turns a validated client body into the upstream request; no I/O, no retries.
 */
import type { Deployment } from '../runtime.ts';

export type Endpoint = 'chat.completions' | 'completions' | 'embeddings';

export const ENDPOINT_PATHS: Readonly<Record<Endpoint, string>> = {
  'chat.completions': '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
};

export interface UpstreamRequest {
  readonly origin: string;
  readonly path: string;
  readonly method: 'POST';
  readonly headers: Record<string, string>;
  readonly body: string;
  /** The client asked for a stream. */
  readonly stream: boolean;
  /** The client itself asked for the usage chunk (so it must not be stripped). */
  readonly clientWantsUsage: boolean;
}

export interface RequestContext {
  readonly requestId: string;
  /** W3C trace context for the provider, when there is one. */
  readonly traceparent?: string | undefined;
}

/** The upstream body of one attempt: built before the attempt, so a failure here is Sluice's own. */
export interface UpstreamBody {
  readonly body: string;
  /** The client asked for a stream. */
  readonly stream: boolean;
  /** The client itself asked for the usage chunk (so it must not be stripped). */
  readonly clientWantsUsage: boolean;
}

export function buildUpstreamBody(
  endpoint: Endpoint,
  body: Readonly<Record<string, unknown>>,
  deployment: Deployment,
): UpstreamBody {
  const stream = body.stream === true && endpoint !== 'embeddings';
  const clientOptions = body.stream_options as { include_usage?: unknown } | null | undefined;
  const clientWantsUsage = clientOptions?.include_usage === true;
  const upstreamBody: Record<string, unknown> = { ...body, model: deployment.upstreamModel };
  if (stream && !clientWantsUsage) {
    // Ask for the usage chunk so tokens are always accounted; the tap strips it again.
    upstreamBody.stream_options = { ...clientOptions, include_usage: true };
  }
  return { body: JSON.stringify(upstreamBody), stream, clientWantsUsage };
}

export function buildUpstreamRequest(
  endpoint: Endpoint,
  prepared: UpstreamBody,
  deployment: Deployment,
  context: RequestContext,
): UpstreamRequest {
  const provider = deployment.provider;
  return {
    origin: provider.origin,
    path: provider.basePath + ENDPOINT_PATHS[endpoint],
    method: 'POST',
    headers:
      context.traceparent === undefined
        ? { ...provider.headers, 'x-request-id': context.requestId }
        : { ...provider.headers, 'x-request-id': context.requestId, traceparent: context.traceparent },
    body: prepared.body,
    stream: prepared.stream,
    clientWantsUsage: prepared.clientWantsUsage,
  };
}
