/**
 * The `requestLog` section of the config: where rows go, partitions and retention, the writer
 * and its spill directory (docs/request-log.md).
 */
import { Type } from '@sinclair/typebox';
import { DEFAULTS } from './defaults.ts';
import { closed, StringEnum } from './schema-kit.ts';

const PostgresUrl = (description: string) =>
  Type.String({
    pattern: '^(postgres(ql)?://.+|.*\\$\\{.*)?$',
    maxLength: 4096,
    description: `${description} Empty: not set.`,
  });

export const RequestLogSchema = closed(
  {
    enabled: Type.Boolean({ default: DEFAULTS.requestLog.enabled }),
    url: Type.Optional(
      PostgresUrl(
        'Postgres (or PgBouncer) URL. Default: $DATABASE_URL; with neither, embedded PGlite under dataDir. Use ${ENV} for the password.',
      ),
    ),
    replicaUrl: Type.Optional(PostgresUrl('Read replica for /admin/requests and /admin/usage.')),
    dataDir: Type.String({ minLength: 1, maxLength: 1024, default: DEFAULTS.requestLog.dataDir }),
    poolSize: Type.Integer({
      minimum: 1,
      maximum: 1_000,
      default: DEFAULTS.requestLog.poolSize,
      description:
        'Connections this instance opens; through PgBouncer, count them against its max_client_conn, not its pool.',
    }),
    migrate: Type.Boolean({ default: DEFAULTS.requestLog.migrate }),
    partitionInterval: StringEnum(['hour', 'day'] as const, {
      default: DEFAULTS.requestLog.partitionInterval,
    }),
    partitionsAhead: Type.Integer({ minimum: 1, maximum: 366, default: DEFAULTS.requestLog.partitionsAhead }),
    retentionDays: Type.Integer({ minimum: 1, maximum: 3_650, default: DEFAULTS.requestLog.retentionDays }),
    defaultPartition: Type.Boolean({ default: DEFAULTS.requestLog.defaultPartition }),
    maintenanceIntervalMs: Type.Integer({
      minimum: 1_000,
      maximum: 86_400_000,
      default: DEFAULTS.requestLog.maintenanceIntervalMs,
    }),
    lockTimeoutMs: Type.Integer({ minimum: 1, maximum: 600_000, default: DEFAULTS.requestLog.lockTimeoutMs }),
    batchRows: Type.Integer({ minimum: 1, maximum: 10_000, default: DEFAULTS.requestLog.batchRows }),
    flushIntervalMs: Type.Integer({
      minimum: 1,
      maximum: 600_000,
      default: DEFAULTS.requestLog.flushIntervalMs,
    }),
    maxBufferedRows: Type.Integer({
      minimum: 1,
      maximum: 10_000_000,
      default: DEFAULTS.requestLog.maxBufferedRows,
    }),
    maxConcurrentWrites: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: DEFAULTS.requestLog.maxConcurrentWrites,
    }),
    writeTimeoutMs: Type.Integer({
      minimum: 1,
      maximum: 600_000,
      default: DEFAULTS.requestLog.writeTimeoutMs,
    }),
    readTimeoutMs: Type.Integer({ minimum: 1, maximum: 600_000, default: DEFAULTS.requestLog.readTimeoutMs }),
    spillDir: Type.String({ minLength: 1, maxLength: 1024, default: DEFAULTS.requestLog.spillDir }),
    maxSpillBytes: Type.Integer({
      minimum: 0,
      maximum: 1024 ** 4,
      default: DEFAULTS.requestLog.maxSpillBytes,
    }),
  },
  'The request log: one row per request in Postgres, written in batches off the request path (docs/request-log.md).',
);
