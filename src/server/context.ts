import type { Priority } from '../config/defaults.ts';
import type { Admission, Hold } from '../limits/limiter.ts';
import type { Slot } from '../queue/queues.ts';
import type { Deployment, Runtime, Tenant } from '../runtime.ts';
import type { RequestSpan } from '../telemetry/tracing.ts';
import type { Usage } from '../upstream/usage.ts';

/** What one request collects on its way through, read once at the end for the log line and metrics. */
export interface RequestContext {
  readonly startedAt: number;
  runtime: Runtime;
  tenant: Tenant | undefined;
  /** The tenant's priority class, or a lower one the request asked for (x-sluice-priority). */
  priority: Priority;
  model: string | undefined;
  /** The route to log and count when it is narrower than fastify's (a pass-through pattern). */
  route: string | undefined;
  deployment: string | undefined;
  /** The deployment of the latest attempt. */
  served: Deployment | undefined;
  /** Upstream attempts made (retries and fallbacks included). */
  attempts: number;
  /** The fallback model that served the request, if one did. */
  fallback: string | undefined;
  stream: boolean;
  usage: Usage | undefined;
  errorCode: string | undefined;
  /** ms from request start to the first byte written to the client (streams). */
  firstByteMs: number | undefined;
  truncated: boolean;
  /** What the request holds from the limiter (leases, token charges), settled when it ends. */
  admission: Admission | undefined;
  /** Outbound budget hold of the attempt that answered. */
  outboundHold: Hold | undefined;
  /** The admission-queue slot the request holds while it calls upstream. */
  slot: Slot | undefined;
  /** How long it waited for the slot, ms. */
  queueWaitMs: number | undefined;
  /** Set once the response has ended (or the client went away) and the request was logged. */
  finished: boolean;
  /** The request's span (tracing on) or trace id (off); none on health and metrics routes. */
  trace: RequestSpan | undefined;
  /** Called when the client connection closes before the response finished. */
  onClientGone: (() => void) | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    sluice: RequestContext;
  }
  interface FastifyContextConfig {
    /** Route needs a Sluice key. */
    auth?: boolean;
    /** Route needs an admin key. */
    admin?: boolean;
  }
}
