/**
 * The `limits` section of the config: tenant and model buckets, concurrency, fleet capacity,
 * provider outbound budgets, Redis and the worker shedder (docs/limits.md).
 */
import { Type } from '@sinclair/typebox';
import { DEFAULTS } from './defaults.ts';
import { closed, ModelName, NamedMap, Share, StringEnum } from './schema-kit.ts';

const Shadow = Type.Boolean({
  default: false,
  description: 'Evaluate and report (metrics, log) but do not enforce: to dark-launch a limit.',
});

export const BucketSchema = closed(
  {
    limit: Type.Integer({ minimum: 1, maximum: 1e12, description: 'Refill amount per `per`.' }),
    per: StringEnum(['second', 'minute', 'hour', 'day'] as const),
    burst: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1e12,
        description: 'Bucket size: the most that can be spent at once. Defaults to `limit`.',
      }),
    ),
    shadow: Shadow,
  },
  'A token bucket: refills `limit` per `per`, holds at most `burst`.',
);

const RateLimitsSchema = {
  requests: Type.Optional(BucketSchema),
  tokens: Type.Optional(BucketSchema),
};

export const TenantLimitsSchema = closed({
  ...RateLimitsSchema,
  concurrency: Type.Optional(
    closed(
      { max: Type.Integer({ minimum: 1, maximum: 1_000_000 }), shadow: Shadow },
      'Requests of this tenant in flight at once, across all instances.',
    ),
  ),
  models: Type.Optional(
    Type.Record(ModelName, closed(RateLimitsSchema), {
      additionalProperties: false,
      description: 'Buckets for this tenant on one model, on top of the tenant-wide ones.',
    }),
  ),
  failureMode: Type.Optional(
    StringEnum(['open', 'closed'] as const, { description: 'Overrides limits.redis.failureMode.' }),
  ),
});

export const LimitsSchema = closed({
  redis: Type.Optional(
    closed({
      url: Type.Optional(
        Type.String({
          pattern: '^(rediss?://.+|.*\\$\\{.*)?$',
          description:
            'redis:// or rediss:// URL; empty or absent = in-memory limits (one instance). Usually ${REDIS_URL:-}.',
        }),
      ),
      keyPrefix: Type.String({
        pattern: '^[A-Za-z0-9._:-]{1,64}$',
        default: DEFAULTS.limits.redis.keyPrefix,
      }),
      commandTimeoutMs: Type.Integer({
        minimum: 1,
        maximum: 10_000,
        default: DEFAULTS.limits.redis.commandTimeoutMs,
      }),
      failureMode: StringEnum(['open', 'closed'] as const, { default: DEFAULTS.limits.redis.failureMode }),
      failuresToOpen: Type.Integer({
        minimum: 1,
        maximum: 1000,
        default: DEFAULTS.limits.redis.failuresToOpen,
      }),
      cooldownMs: Type.Integer({ minimum: 100, maximum: 600_000, default: DEFAULTS.limits.redis.cooldownMs }),
    }),
  ),
  leaseTtlMs: Type.Integer({ minimum: 500, maximum: 3_600_000, default: DEFAULTS.limits.leaseTtlMs }),
  tokenEstimate: Type.Optional(
    closed({
      charsPerToken: Type.Number({
        exclusiveMinimum: 0,
        maximum: 100,
        default: DEFAULTS.limits.tokenEstimate.charsPerToken,
      }),
      defaultMaxTokens: Type.Integer({
        minimum: 0,
        maximum: 10_000_000,
        default: DEFAULTS.limits.tokenEstimate.defaultMaxTokens,
      }),
    }),
  ),
  worker: Type.Optional(
    closed({
      enabled: Type.Boolean({ default: DEFAULTS.limits.worker.enabled }),
      maxEventLoopDelayMs: Type.Number({
        exclusiveMinimum: 0,
        maximum: 60_000,
        default: DEFAULTS.limits.worker.maxEventLoopDelayMs,
      }),
      maxUtilization: Type.Number({
        exclusiveMinimum: 0,
        maximum: 1,
        default: DEFAULTS.limits.worker.maxUtilization,
      }),
      sampleIntervalMs: Type.Integer({
        minimum: 20,
        maximum: 60_000,
        default: DEFAULTS.limits.worker.sampleIntervalMs,
      }),
      escalateAfterSamples: Type.Integer({
        minimum: 1,
        maximum: 1000,
        default: DEFAULTS.limits.worker.escalateAfterSamples,
      }),
      recoverAfterSamples: Type.Integer({
        minimum: 1,
        maximum: 1000,
        default: DEFAULTS.limits.worker.recoverAfterSamples,
      }),
      recoverRatio: Type.Number({
        exclusiveMinimum: 0,
        maximum: 1,
        default: DEFAULTS.limits.worker.recoverRatio,
      }),
      retryAfterSeconds: Type.Integer({
        minimum: 1,
        maximum: 3600,
        default: DEFAULTS.limits.worker.retryAfterSeconds,
      }),
    }),
  ),
  fleet: Type.Optional(
    closed({
      shares: Type.Optional(
        closed(
          {
            batch: Share(DEFAULTS.limits.fleetShares.batch),
            standard: Share(DEFAULTS.limits.fleetShares.standard),
            critical: Share(DEFAULTS.limits.fleetShares.critical),
          },
          "Share of each model's maxInFlight a priority may fill; must be batch <= standard <= critical.",
        ),
      ),
      models: Type.Optional(
        Type.Record(
          ModelName,
          closed({ maxInFlight: Type.Integer({ minimum: 1, maximum: 10_000_000 }), shadow: Shadow }),
          {
            additionalProperties: false,
            description: 'Fleet-wide in-flight capacity of a model, all instances and tenants together.',
          },
        ),
      ),
    }),
  ),
  tenants: Type.Optional(NamedMap(TenantLimitsSchema)),
  providers: Type.Optional(
    NamedMap(closed(RateLimitsSchema), {
      description: "Outbound budgets: stay inside each provider key's own RPM/TPM.",
    }),
  ),
});
