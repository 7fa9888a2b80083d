/**
 * One request-log row: what a request did, built once when it ends. The column list here is the
 * single description of the row shared by the INSERT, the spill file and the read API.
 */

export interface RequestLogRow {
  requestId: string;
  /** Request start, epoch milliseconds (whole): part of the primary key, so a replay is a no-op. */
  createdAtMs: number;
  tenant: string;
  route: string;
  model: string | null;
  deployment: string | null;
  provider: string | null;
  region: string | null;
  status: number;
  errorCode: string | null;
  attempts: number;
  /** The fallback model that answered, when one did. */
  fallback: string | null;
  queueWaitMs: number | null;
  /** Time to first byte of a stream (to the whole answer for JSON, which is totalMs). */
  ttftMs: number | null;
  totalMs: number;
  tokensIn: number | null;
  tokensOut: number | null;
  costUsd: number | null;
  traceId: string | null;
  streamed: boolean;
  truncated: boolean;
}

type Key = keyof RequestLogRow;

/** [column, Postgres type, row key], in table order. */
export const COLUMNS: readonly (readonly [string, string, Key])[] = [
  ['created_at', 'float8', 'createdAtMs'],
  ['request_id', 'text', 'requestId'],
  ['tenant', 'text', 'tenant'],
  ['route', 'text', 'route'],
  ['model', 'text', 'model'],
  ['deployment', 'text', 'deployment'],
  ['provider', 'text', 'provider'],
  ['region', 'text', 'region'],
  ['status', 'int2', 'status'],
  ['error_code', 'text', 'errorCode'],
  ['attempts', 'int2', 'attempts'],
  ['fallback', 'text', 'fallback'],
  ['queue_wait_ms', 'float4', 'queueWaitMs'],
  ['ttft_ms', 'float4', 'ttftMs'],
  ['total_ms', 'float4', 'totalMs'],
  ['tokens_in', 'int8', 'tokensIn'],
  ['tokens_out', 'int8', 'tokensOut'],
  ['cost_usd', 'float8', 'costUsd'],
  ['trace_id', 'text', 'traceId'],
  ['streamed', 'bool', 'streamed'],
  ['truncated', 'bool', 'truncated'],
];

/**
 * One statement for a whole batch, with one parameter: the rows as a JSON array, unpacked by
 * json_to_recordset on the server. Each row is serialised once, when the request ends
 * (serializeRow), so a flush only joins strings: no burst of work on the event loop, and the
 * statement text never changes and is never prepared by name (it runs through PgBouncer in
 * transaction mode). ON CONFLICT makes a retried or replayed batch a no-op.
 */
export const INSERT_SQL = `INSERT INTO request_log (${COLUMNS.map(([c]) => c).join(', ')})
SELECT to_timestamp(r."createdAtMs" / 1000.0), ${COLUMNS.slice(1)
  .map(([, , key]) => `r."${key}"`)
  .join(', ')}
FROM json_to_recordset($1::json)
  AS r(${COLUMNS.map(([, type, key]) => `"${key}" ${type}`).join(', ')})
ON CONFLICT DO NOTHING`;

/** A row as the writer keeps it: its JSON text (also one line of the spill file). */
export function serializeRow(row: RequestLogRow): string {
  return JSON.stringify(row);
}

/** The INSERT's one parameter for a batch of serialised rows. */
export function insertParam(lines: readonly string[]): string {
  return `[${lines.join(',')}]`;
}

/** Cost in USD from token counts and a deployment's price per million tokens. */
export function costOf(
  pricing: { inputPerMillion: number; outputPerMillion: number } | undefined,
  tokensIn: number | null,
  tokensOut: number | null,
): number | null {
  if (pricing === undefined || (tokensIn === null && tokensOut === null)) return null;
  return ((tokensIn ?? 0) * pricing.inputPerMillion + (tokensOut ?? 0) * pricing.outputPerMillion) / 1e6;
}

const MAX_TEXT = 256;
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * A row read back from the spill file, checked field by field (the file may be truncated or
 * edited); undefined when it is not a row.
 */
export function rowFromJson(value: unknown): RequestLogRow | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.requestId !== 'string' || !REQUEST_ID.test(v.requestId)) return undefined;
  if (!Number.isInteger(v.createdAtMs) || typeof v.tenant !== 'string' || typeof v.route !== 'string')
    return undefined;
  if (!Number.isInteger(v.status) || !Number.isInteger(v.attempts) || typeof v.totalMs !== 'number')
    return undefined;
  const text = (x: unknown) => (typeof x === 'string' ? x.slice(0, MAX_TEXT) : null);
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  return {
    requestId: v.requestId,
    createdAtMs: v.createdAtMs as number,
    tenant: v.tenant.slice(0, MAX_TEXT),
    route: v.route.slice(0, MAX_TEXT),
    model: text(v.model),
    deployment: text(v.deployment),
    provider: text(v.provider),
    region: text(v.region),
    status: v.status as number,
    errorCode: text(v.errorCode),
    attempts: v.attempts as number,
    fallback: text(v.fallback),
    queueWaitMs: num(v.queueWaitMs),
    ttftMs: num(v.ttftMs),
    totalMs: v.totalMs,
    tokensIn: num(v.tokensIn),
    tokensOut: num(v.tokensOut),
    costUsd: num(v.costUsd),
    traceId: text(v.traceId),
    streamed: v.streamed === true,
    truncated: v.truncated === true,
  };
}
