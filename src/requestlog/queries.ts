/**
 * The read API's queries, pure: query-string parameters checked into a filter (or a SluiceError
 * naming the bad parameter), then the SQL and its parameters. Pages are keyset pages over the
 * primary key (created_at, request_id), newest first; the cursor is opaque to clients.
 */
import { SluiceError } from '../errors/sluice-error.ts';

export type Query = Record<string, unknown>;

export interface RequestsFilter {
  tenant?: string;
  model?: string;
  /** An exact status, or a class as [from, to). */
  status?: { from: number; to: number };
  sinceMs?: number;
  untilMs?: number;
  limit: number;
  after?: { createdAtMs: number; requestId: string };
}

export interface UsageFilter {
  granularity: 'hour' | 'day';
  tenant?: string;
  model?: string;
  sinceMs: number;
  untilMs: number;
}

export const MAX_PAGE = 1_000;
export const DEFAULT_PAGE = 100;
/** Most usage groups one call returns (buckets x tenants x models). */
export const MAX_USAGE_ROWS = 10_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MAX_SPAN = { hour: 31 * DAY, day: 400 * DAY } as const;
const DEFAULT_SPAN = { hour: DAY, day: 30 * DAY } as const;

const bad = (param: string, message: string) => new SluiceError('invalid_request', message, { param });

function only(query: Query, allowed: readonly string[]): void {
  for (const key of Object.keys(query)) {
    if (!allowed.includes(key)) {
      throw bad(key, `Unknown query parameter "${key.slice(0, 64)}"; accepted: ${allowed.join(', ')}.`);
    }
  }
}

function text(query: Query, name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw bad(name, `"${name}" must be given once.`);
  if (v.length === 0 || v.length > 256) throw bad(name, `"${name}" must be 1 to 256 characters.`);
  return v;
}

const ISO = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2}))?$/;

function time(query: Query, name: string): number | undefined {
  const v = text(query, name);
  if (v === undefined) return undefined;
  const ms = ISO.test(v) && realDate(v) ? Date.parse(v.length === 10 ? `${v}T00:00:00Z` : v) : Number.NaN;
  if (!Number.isFinite(ms)) {
    throw bad(name, `"${name}" must be an ISO 8601 date or time with a zone, e.g. 2026-11-29T10:00:00Z.`);
  }
  return ms;
}

/** Date.parse rolls 2026-02-30 over to March; a day that does not exist is refused instead. */
function realDate(v: string): boolean {
  const [y, m, d] = [Number(v.slice(0, 4)), Number(v.slice(5, 7)), Number(v.slice(8, 10))];
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

function statusFilter(v: string | undefined): RequestsFilter['status'] {
  if (v === undefined) return undefined;
  if (/^[1-5]\d\d$/.test(v)) return { from: Number(v), to: Number(v) + 1 };
  if (/^[1-5]xx$/.test(v)) return { from: Number(v[0]) * 100, to: Number(v[0]) * 100 + 100 };
  if (v === 'error') return { from: 400, to: 600 };
  throw bad('status', '"status" must be an HTTP status (429), a class (5xx) or "error" (400 and above).');
}

export function encodeCursor(createdAtMs: number, requestId: string): string {
  return Buffer.from(JSON.stringify([createdAtMs, requestId])).toString('base64url');
}

function decodeCursor(v: string | undefined): RequestsFilter['after'] {
  if (v === undefined) return undefined;
  try {
    const [createdAtMs, requestId] = JSON.parse(Buffer.from(v, 'base64url').toString('utf8')) as unknown[];
    if (Number.isInteger(createdAtMs) && typeof requestId === 'string' && requestId.length <= 256) {
      return { createdAtMs: createdAtMs as number, requestId };
    }
  } catch {
    // fall through
  }
  throw bad('cursor', '"cursor" is not a cursor this API returned.');
}

export function parseRequestsQuery(query: Query): RequestsFilter {
  only(query, ['tenant', 'model', 'status', 'since', 'until', 'limit', 'cursor']);
  const limitText = text(query, 'limit');
  let limit = DEFAULT_PAGE;
  if (limitText !== undefined) {
    if (!/^\d{1,4}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > MAX_PAGE) {
      throw bad('limit', `"limit" must be a whole number from 1 to ${MAX_PAGE}.`);
    }
    limit = Number(limitText);
  }
  const filter: RequestsFilter = {
    tenant: text(query, 'tenant'),
    model: text(query, 'model'),
    status: statusFilter(text(query, 'status')),
    sinceMs: time(query, 'since'),
    untilMs: time(query, 'until'),
    limit,
    after: decodeCursor(text(query, 'cursor')),
  };
  if (filter.sinceMs !== undefined && filter.untilMs !== undefined && filter.sinceMs >= filter.untilMs) {
    throw bad('since', '"since" must be before "until".');
  }
  return filter;
}

export function parseUsageQuery(query: Query, nowMs: number): UsageFilter {
  only(query, ['granularity', 'tenant', 'model', 'since', 'until']);
  const g = text(query, 'granularity') ?? 'hour';
  if (g !== 'hour' && g !== 'day') throw bad('granularity', '"granularity" must be "hour" or "day".');
  const untilMs = time(query, 'until') ?? nowMs;
  const sinceMs = time(query, 'since') ?? untilMs - DEFAULT_SPAN[g];
  if (sinceMs >= untilMs) throw bad('since', '"since" must be before "until".');
  if (untilMs - sinceMs > MAX_SPAN[g]) {
    throw bad('since', `At most ${MAX_SPAN[g] / DAY} days per call with granularity ${g}.`);
  }
  return { granularity: g, tenant: text(query, 'tenant'), model: text(query, 'model'), sinceMs, untilMs };
}

const TS = (i: number) => `to_timestamp($${i}::float8 / 1000.0)`;

export function requestsSql(f: RequestsFilter): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (value: unknown) => {
    params.push(value);
    return params.length;
  };
  if (f.tenant !== undefined) where.push(`tenant = $${add(f.tenant)}`);
  if (f.model !== undefined) where.push(`model = $${add(f.model)}`);
  if (f.status !== undefined) {
    where.push(`status >= $${add(f.status.from)} AND status < $${add(f.status.to)}`);
  }
  if (f.sinceMs !== undefined) where.push(`created_at >= ${TS(add(f.sinceMs))}`);
  if (f.untilMs !== undefined) where.push(`created_at < ${TS(add(f.untilMs))}`);
  if (f.after !== undefined) {
    where.push(`(created_at, request_id) < (${TS(add(f.after.createdAtMs))}, $${add(f.after.requestId)})`);
  }
  const sql = `SELECT floor(extract(epoch FROM created_at) * 1000)::float8 AS created_ms,
    request_id, tenant, route, model, deployment, provider, region, status, error_code, attempts,
    fallback, queue_wait_ms, ttft_ms, total_ms, tokens_in::float8 AS tokens_in,
    tokens_out::float8 AS tokens_out, cost_usd, trace_id, streamed, truncated
  FROM request_log${where.length ? ` WHERE ${where.join(' AND ')}` : ''}
  ORDER BY created_at DESC, request_id DESC
  LIMIT $${add(f.limit + 1)}`;
  return { sql, params };
}

export function usageSql(f: UsageFilter): { sql: string; params: unknown[] } {
  const params: unknown[] = [f.granularity, f.sinceMs, f.untilMs];
  const where = [`created_at >= ${TS(2)}`, `created_at < ${TS(3)}`];
  if (f.tenant !== undefined) {
    params.push(f.tenant);
    where.push(`tenant = $${params.length}`);
  }
  if (f.model !== undefined) {
    params.push(f.model);
    where.push(`model = $${params.length}`);
  }
  params.push(MAX_USAGE_ROWS + 1);
  const sql = `SELECT floor(extract(epoch FROM date_trunc($1, created_at, 'UTC')) * 1000)::float8 AS bucket_ms,
    tenant, model, count(*)::int AS requests,
    (count(*) FILTER (WHERE status >= 400))::int AS errors,
    coalesce(sum(tokens_in), 0)::float8 AS tokens_in,
    coalesce(sum(tokens_out), 0)::float8 AS tokens_out,
    coalesce(sum(cost_usd), 0)::float8 AS cost_usd
  FROM request_log WHERE ${where.join(' AND ')}
  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  LIMIT $${params.length}`;
  return { sql, params };
}
