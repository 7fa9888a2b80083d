/**
 * OpenTelemetry tracing, the only home of @opentelemetry/*. Off unless `tracing.endpoint` is set:
 * then each request is a server span (the child of the client's `traceparent`, when it sends a
 * valid one), each upstream attempt a client span under it, exported in batches over OTLP/HTTP,
 * and the attempt's `traceparent` goes to the provider. Off, the trace id still comes from the
 * client's `traceparent` (or is made up), and that header is passed upstream unchanged. Either
 * way the trace id is the one in the log line and the request-log row.
 */
import {
  type Attributes,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import type { TracingConfig } from '../config/schema.ts';
import type { Deployment } from '../runtime.ts';
import { newTraceId, traceIdFrom } from './trace-context.ts';

export interface AttemptSpan {
  /** The `traceparent` to send with this attempt, if any. */
  readonly traceparent: string | undefined;
  end(outcome: string): void;
}

export interface RequestSpan {
  readonly traceId: string;
  /** A span for one upstream attempt (tracing on), or the client's traceparent (off). */
  attempt(deployment: Deployment): AttemptSpan;
  end(attributes: Attributes, status: number): void;
}

export interface Tracing {
  readonly enabled: boolean;
  startRequest(name: string, traceparent: string | string[] | undefined): RequestSpan;
  /** Exports what is buffered (bounded by the exporter's timeout). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

const NO_TRACEPARENT: AttemptSpan = { traceparent: undefined, end() {} };

/** Tracing off: trace ids only. */
class Untraced implements RequestSpan {
  readonly #header: string | undefined;
  #traceId: string | undefined;
  constructor(header: string | undefined) {
    this.#header = header;
  }
  get traceId(): string {
    this.#traceId ??= traceIdFrom(this.#header) ?? newTraceId();
    return this.#traceId;
  }
  attempt(): AttemptSpan {
    return this.#header !== undefined && traceIdFrom(this.#header) !== undefined
      ? { traceparent: this.#header.trim(), end() {} }
      : NO_TRACEPARENT;
  }
  end(): void {}
}

export const TRACING_OFF: Tracing = {
  enabled: false,
  startRequest: (_name, traceparent) =>
    new Untraced(typeof traceparent === 'string' ? traceparent : undefined),
  flush: async () => {},
  shutdown: async () => {},
};

const propagator = new W3CTraceContextPropagator();
const getter = {
  keys: (carrier: Record<string, string>) => Object.keys(carrier),
  get: (carrier: Record<string, string>, key: string) => carrier[key],
};
const setter = {
  set: (carrier: Record<string, string>, key: string, value: string) => {
    carrier[key] = value;
  },
};

export function createTracing(config: TracingConfig, instanceId: string): Tracing {
  const endpoint = config.endpoint;
  if (endpoint === undefined || endpoint === '') return TRACING_OFF;
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': config.serviceName,
      'service.instance.id': instanceId,
    }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({
          url: endpoint,
          headers: { ...(config.headers ?? {}) },
          timeoutMillis: config.exportTimeoutMs,
        }),
        maxQueueSize: config.maxQueuedSpans,
        maxExportBatchSize: Math.min(512, config.maxQueuedSpans),
        scheduledDelayMillis: 1_000,
        exportTimeoutMillis: config.exportTimeoutMs,
      }),
    ],
  });
  const tracer = provider.getTracer('sluice');

  class Traced implements RequestSpan {
    readonly #span: Span;
    readonly traceId: string;
    constructor(name: string, header: string | undefined) {
      const parent =
        header === undefined
          ? ROOT_CONTEXT
          : propagator.extract(ROOT_CONTEXT, { traceparent: header }, getter);
      this.#span = tracer.startSpan(name, { kind: SpanKind.SERVER }, parent);
      this.traceId = this.#span.spanContext().traceId;
    }
    attempt(deployment: Deployment): AttemptSpan {
      const span = tracer.startSpan(
        `upstream ${deployment.provider.name}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'sluice.deployment': deployment.id,
            'sluice.provider': deployment.provider.name,
            'gen_ai.request.model': deployment.upstreamModel,
            'server.address': deployment.provider.origin,
          },
        },
        trace.setSpan(ROOT_CONTEXT, this.#span),
      );
      const carrier: Record<string, string> = {};
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
      return {
        traceparent: carrier.traceparent,
        end(outcome: string) {
          span.setAttribute('sluice.outcome', outcome);
          if (outcome !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
          span.end();
        },
      };
    }
    end(attributes: Attributes, status: number): void {
      this.#span.setAttributes(attributes);
      this.#span.setAttribute('http.response.status_code', status);
      if (status >= 500) this.#span.setStatus({ code: SpanStatusCode.ERROR });
      this.#span.end();
    }
  }

  return {
    enabled: true,
    startRequest: (name, traceparent) =>
      new Traced(name, typeof traceparent === 'string' ? traceparent : undefined),
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
