/**
 * The closed schema of the config file. It is the single source of the TypeScript types, the
 * runtime validation (ajv) and the published `config/schema.json` (`npm run schema`).
 * Unknown keys are refused everywhere: a typo must fail loudly, not be ignored.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { DEFAULTS, PRIORITIES } from './defaults.ts';
import { closed, Milliseconds, ModelName, Name, NamedMap, Share, StringEnum } from './schema-kit.ts';
import { type BucketSchema, LimitsSchema, type TenantLimitsSchema } from './schema-limits.ts';
import { RequestLogSchema } from './schema-request-log.ts';
import { ServerSchema } from './schema-server.ts';

export const TimeoutsSchema = closed(
  {
    connectTimeoutMs: Type.Optional(
      Milliseconds('TCP+TLS connect to the provider. Provider and top-level only (refused on a model).'),
    ),
    firstTokenTimeoutMs: Type.Optional(
      Milliseconds('From request sent to the first content token (streams) or response headers (JSON).'),
    ),
    chunkGapTimeoutMs: Type.Optional(Milliseconds('Longest silence allowed between two stream chunks.')),
    totalTimeoutMs: Type.Optional(Milliseconds('Hard ceiling for the whole upstream call.')),
  },
  'The timeout ladder; must satisfy connect <= firstToken <= chunkGap <= total once merged.',
);

export const ProviderSchema = closed({
  kind: StringEnum(['openai', 'fake'] as const, {
    description:
      "Wire format. 'openai' covers any OpenAI-compatible API; 'fake' is Sluice's fake provider (started in-process when baseUrl is omitted).",
  }),
  baseUrl: Type.Optional(
    Type.String({
      pattern: '^https?://',
      description: 'Base URL up to and including the API version, e.g. https://api.openai.com/v1',
    }),
  ),
  apiKey: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'Sent upstream as a Bearer token. Use ${ENV_VAR}; never logged.',
    }),
  ),
  region: Type.String({ minLength: 1, maxLength: 64, default: DEFAULTS.provider.region }),
  connections: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: DEFAULTS.provider.connections,
    description: 'Keep-alive connections in the pool for this origin.',
  }),
  headers: Type.Optional(
    Type.Record(Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$' }), Type.String({ maxLength: 4096 }), {
      additionalProperties: false,
      description: 'Extra headers sent on every upstream request (e.g. OpenAI-Organization).',
    }),
  ),
  timeouts: Type.Optional(TimeoutsSchema),
});

export const DeploymentSchema = closed({
  provider: Name,
  model: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 256,
      description: 'Upstream model name; defaults to the public name.',
    }),
  ),
  weight: Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000, default: DEFAULTS.deployment.weight }),
  pricing: Type.Optional(
    closed(
      {
        inputPerMillion: Type.Number({
          minimum: 0,
          maximum: 1_000_000,
          description: 'USD per million prompt tokens.',
        }),
        outputPerMillion: Type.Number({
          minimum: 0,
          maximum: 1_000_000,
          description: 'USD per million completion tokens.',
        }),
      },
      "This deployment's price, for the cost column of the request log and /admin/usage.",
    ),
  ),
});

export const ModelSchema = closed({
  deployments: Type.Array(DeploymentSchema, { minItems: 1, maxItems: 64 }),
  fallbacks: Type.Optional(
    Type.Array(ModelName, {
      maxItems: 8,
      description:
        'Models tried in order when every deployment of this one failed or is unavailable (their own fallbacks are not followed).',
    }),
  ),
  contextFallback: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 256,
      description: 'A larger-context model to try when a provider says the prompt is too long for this one.',
    }),
  ),
  timeouts: Type.Optional(TimeoutsSchema),
  queue: Type.Optional(
    closed(
      {
        maxConcurrent: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 100_000,
            description:
              "Requests calling this model's deployments at once on this instance; the rest wait. Default: its share of its providers' connections.",
          }),
        ),
        maxQueued: Type.Optional(
          Type.Integer({
            minimum: 0,
            maximum: 1_000_000,
            description:
              'Requests waiting for this model on this instance. Default: queue.queuedPerSlot x maxConcurrent.',
          }),
        ),
      },
      'The admission queue of this model (docs/queue.md).',
    ),
  ),
});

export const RetrySchema = closed({
  maxAttempts: Type.Integer({
    minimum: 1,
    maximum: 10,
    default: DEFAULTS.retry.maxAttempts,
    description: 'Upstream attempts per request, the first included.',
  }),
  baseDelayMs: Type.Integer({ minimum: 0, maximum: 60_000, default: DEFAULTS.retry.baseDelayMs }),
  maxDelayMs: Type.Integer({ minimum: 0, maximum: 600_000, default: DEFAULTS.retry.maxDelayMs }),
  sameDeployment: Type.Boolean({
    default: DEFAULTS.retry.sameDeployment,
    description:
      'When no untried deployment or fallback is left, retry one that already failed this request (for a model with one deployment: the same one). false: each deployment is tried at most once per request.',
  }),
  budgetRatio: Type.Number({
    minimum: 0,
    maximum: 10,
    default: DEFAULTS.retry.budgetRatio,
    description: 'Retries per deployment may add at most this share of its recent first attempts.',
  }),
  budgetMinPerSecond: Type.Number({
    minimum: 0,
    maximum: 100_000,
    default: DEFAULTS.retry.budgetMinPerSecond,
  }),
  budgetWindowMs: Type.Integer({ minimum: 1_000, maximum: 600_000, default: DEFAULTS.retry.budgetWindowMs }),
});

export const BreakerSchema = closed({
  errorThresholdPercent: Type.Number({
    exclusiveMinimum: 0,
    maximum: 100,
    default: DEFAULTS.breaker.errorThresholdPercent,
  }),
  volumeThreshold: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    default: DEFAULTS.breaker.volumeThreshold,
  }),
  windowMs: Type.Integer({ minimum: 1_000, maximum: 3_600_000, default: DEFAULTS.breaker.windowMs }),
  cooldownMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: DEFAULTS.breaker.cooldownMs }),
  countRateLimits: Type.Boolean({ default: DEFAULTS.breaker.countRateLimits }),
});

export const TenantSchema = closed({
  keys: Type.Array(
    Type.String({
      pattern: '^sha256:[0-9a-f]{64}$',
      description: 'SHA-256 of a Sluice key, as printed by `npm run hash-key -- <key>`.',
    }),
    { minItems: 1, maxItems: 1000 },
  ),
  priority: StringEnum(PRIORITIES, { default: DEFAULTS.tenant.priority }),
  loopbackOnly: Type.Optional(
    Type.Boolean({
      description:
        "Accept this tenant's keys only on connections from 127.0.0.1 or ::1 (the socket's address, never X-Forwarded-For).",
    }),
  ),
});

export const QueueSchema = closed(
  {
    enabled: Type.Boolean({ default: DEFAULTS.queue.enabled }),
    maxQueuedTotal: Type.Integer({ minimum: 0, maximum: 10_000_000, default: DEFAULTS.queue.maxQueuedTotal }),
    queuedPerSlot: Type.Number({ minimum: 0, maximum: 10_000, default: DEFAULTS.queue.queuedPerSlot }),
    agingMs: Type.Integer({ minimum: 1, maximum: 3_600_000, default: DEFAULTS.queue.agingMs }),
    maxWaitMs: Type.Integer({ minimum: 1, maximum: 86_400_000, default: DEFAULTS.queue.maxWaitMs }),
    maxQueuedPerTenant: Type.Integer({
      minimum: 0,
      maximum: 1_000_000,
      default: DEFAULTS.queue.maxQueuedPerTenant,
    }),
    shares: Type.Optional(
      closed(
        {
          batch: Share(DEFAULTS.queue.shares.batch),
          standard: Share(DEFAULTS.queue.shares.standard),
          critical: Share(DEFAULTS.queue.shares.critical),
        },
        "Share of a model's maxQueued each priority may fill; must be batch <= standard <= critical.",
      ),
    ),
  },
  "Admission queues: requests beyond a model's maxConcurrent wait here, bounded and by priority (docs/queue.md).",
);

export const MetricsSchema = Type.Object(
  {
    maxTenantLabels: Type.Integer({
      minimum: 0,
      maximum: 100_000,
      default: DEFAULTS.metrics.maxTenantLabels,
      description:
        'Without tenantLabels: the first this many tenants an instance reports get their own `tenant` label on sluice_tokens_total and sluice_cost_usd_total; the others share tenant="_other". 0: all share it.',
    }),
    tenantLabels: Type.Optional(
      Type.Array(Name, {
        maxItems: 10_000,
        uniqueItems: true,
        description:
          'Exactly these tenants get their own `tenant` label on the token and cost counters; every other tenant is counted under tenant="_other" (maxTenantLabels is then unused).',
      }),
    ),
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'Bounds on metric label values (docs/metrics.md). Per-tenant cost lives in the request log and /admin/usage.',
  },
);

export const TracingSchema = closed(
  {
    endpoint: Type.Optional(
      Type.String({
        pattern: '^(https?://.+|.*\\$\\{.*)?$',
        maxLength: 4096,
        description:
          'OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces. Absent or empty: tracing off.',
      }),
    ),
    serviceName: Type.String({ minLength: 1, maxLength: 128, default: DEFAULTS.tracing.serviceName }),
    sampleRatio: Type.Number({ minimum: 0, maximum: 1, default: DEFAULTS.tracing.sampleRatio }),
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$' }), Type.String({ maxLength: 4096 }), {
        additionalProperties: false,
        description: 'Sent with every export (e.g. an auth token: use ${ENV}).',
      }),
    ),
    exportTimeoutMs: Type.Integer({
      minimum: 1,
      maximum: 600_000,
      default: DEFAULTS.tracing.exportTimeoutMs,
    }),
    maxQueuedSpans: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: DEFAULTS.tracing.maxQueuedSpans,
    }),
  },
  'OpenTelemetry traces over OTLP/HTTP: a span per request, one per upstream attempt (docs/observability.md).',
);

/** Methods a pass-through route may allow. */
export const PASSTHROUGH_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const TenantList = (description: string) =>
  Type.Array(Name, { minItems: 1, maxItems: 10_000, uniqueItems: true, description });

export const PassthroughRouteSchema = closed({
  path: Type.String({
    // Segment-wise: literals, `*` (one segment) and `**` (the rest; last only, checked at load).
    pattern: '^(/([A-Za-z0-9_~:@-][A-Za-z0-9._~:@-]*|\\*|\\*\\*))+$',
    maxLength: 512,
    description:
      'Path pattern under /v1, e.g. /files, /files/*, /batches/*/cancel, /fine_tuning/**: literal segments, * for one segment, ** (last) for one or more.',
  }),
  methods: Type.Array(StringEnum(PASSTHROUGH_METHODS), {
    minItems: 1,
    uniqueItems: true,
    description: 'HTTP methods allowed on this path; others get 405 with an allow header.',
  }),
  tenants: Type.Optional(TenantList('Tenants that may use this route; defaults to passthrough.tenants.')),
});

export const PassthroughSchema = closed(
  {
    provider: Name,
    tenants: Type.Optional(TenantList('Tenants that may use the routes that do not list their own tenants.')),
    routes: Type.Array(PassthroughRouteSchema, {
      minItems: 1,
      maxItems: 256,
      description: 'The only paths passed through; every other /v1/* path gets 404.',
    }),
  },
  'Explicitly listed /v1/* paths (files, batches, ...) proxied to this provider with its key, for the listed tenants. Off when absent. Provider-account resources are shared by every tenant allowed to reach them; inference paths are never passed through.',
);

export const ConfigSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    server: Type.Optional(ServerSchema),
    logging: Type.Optional(
      closed({
        level: StringEnum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, {
          default: DEFAULTS.logging.level,
        }),
      }),
    ),
    timeouts: Type.Optional(TimeoutsSchema),
    retry: Type.Optional(RetrySchema),
    breaker: Type.Optional(BreakerSchema),
    admin: Type.Optional(
      closed(
        {
          keys: Type.Array(Type.String({ pattern: '^sha256:[0-9a-f]{64}$' }), { minItems: 1, maxItems: 100 }),
          loopbackOnly: Type.Optional(
            Type.Boolean({
              description:
                'Accept the admin keys only on connections from 127.0.0.1 or ::1 (the socket address, never X-Forwarded-For).',
            }),
          ),
        },
        'Keys (SHA-256 digests) accepted on /admin/* endpoints; without it those endpoints answer 404.',
      ),
    ),
    providers: NamedMap(ProviderSchema, { minProperties: 1 }),
    models: Type.Record(ModelName, ModelSchema, {
      minProperties: 1,
      additionalProperties: false,
    }),
    tenants: NamedMap(TenantSchema, { minProperties: 1 }),
    limits: Type.Optional(LimitsSchema),
    queue: Type.Optional(QueueSchema),
    requestLog: Type.Optional(RequestLogSchema),
    tracing: Type.Optional(TracingSchema),
    metrics: Type.Optional(MetricsSchema),
    passthrough: Type.Optional(PassthroughSchema),
  },
  { additionalProperties: false },
);

export type ConfigInput = Static<typeof ConfigSchema>;
export type ProviderConfig = Static<typeof ProviderSchema>;
export type ModelConfig = Static<typeof ModelSchema>;
export type TenantConfig = Static<typeof TenantSchema>;
export type TimeoutsConfig = Static<typeof TimeoutsSchema>;
export type Timeouts = Required<TimeoutsConfig>;
export type BucketConfig = Static<typeof BucketSchema>;
export type PassthroughConfig = Static<typeof PassthroughSchema>;
export type TenantLimitsConfig = Static<typeof TenantLimitsSchema>;
type LimitsInput = Static<typeof LimitsSchema>;

/** The limits section with every defaulted sub-section present. */
export type LimitsConfig = Omit<LimitsInput, 'redis' | 'tokenEstimate' | 'worker' | 'fleet'> & {
  redis: Required<Omit<NonNullable<LimitsInput['redis']>, 'url'>> & { url?: string };
  tokenEstimate: Required<NonNullable<LimitsInput['tokenEstimate']>>;
  worker: Required<NonNullable<LimitsInput['worker']>>;
  fleet: {
    shares: Required<NonNullable<NonNullable<LimitsInput['fleet']>['shares']>>;
    models?: NonNullable<LimitsInput['fleet']>['models'];
  };
};

export type TracingConfig = Required<Omit<Static<typeof TracingSchema>, 'endpoint' | 'headers'>> & {
  endpoint?: string;
  headers?: Record<string, string>;
};

export type RequestLogConfig = Required<Omit<Static<typeof RequestLogSchema>, 'url' | 'replicaUrl'>> & {
  url?: string;
  replicaUrl?: string;
};

/** The validated config: every section present, every default filled in, deep-frozen. */
export type QueueConfig = Required<Omit<Static<typeof QueueSchema>, 'shares'>> & {
  shares: Required<NonNullable<Static<typeof QueueSchema>['shares']>>;
};

export type MetricsConfig = Required<Omit<Static<typeof MetricsSchema>, 'tenantLabels'>> & {
  tenantLabels?: string[];
};

export type Config = Omit<
  ConfigInput,
  | 'server'
  | 'logging'
  | 'timeouts'
  | 'retry'
  | 'breaker'
  | 'limits'
  | 'queue'
  | 'requestLog'
  | 'tracing'
  | 'metrics'
> & {
  metrics: MetricsConfig;
  tracing: TracingConfig;
  requestLog: RequestLogConfig;
  limits: LimitsConfig;
  queue: QueueConfig;
  server: Required<Omit<NonNullable<ConfigInput['server']>, 'metricsPort'>> & { metricsPort?: number };
  logging: Required<NonNullable<ConfigInput['logging']>>;
  timeouts: Timeouts;
  retry: Required<NonNullable<ConfigInput['retry']>>;
  breaker: Required<NonNullable<ConfigInput['breaker']>>;
};

/**
 * The schema as published for editors: settings with a default are optional there (Sluice fills
 * them in before validating, so the TypeScript types can treat them as always present).
 */
export function jsonSchema(): TSchema {
  return relaxDefaults({
    $id: 'https://sluice.dev/config.schema.json',
    title: 'Sluice configuration',
    ...ConfigSchema,
  }) as TSchema;
}

function relaxDefaults(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(relaxDefaults);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) out[key] = relaxDefaults(value);
  const properties = out.properties as Record<string, { default?: unknown }> | undefined;
  if (Array.isArray(out.required) && properties) {
    const required = (out.required as string[]).filter((name) => properties[name]?.default === undefined);
    if (required.length > 0) out.required = required;
    else delete out.required;
  }
  return out;
}
