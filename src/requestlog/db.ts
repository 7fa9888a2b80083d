/**
 * The one shape both databases take: real Postgres through `pg` (pg-db.ts) and embedded PGlite in a
 * worker thread (pglite-db.ts). Everything above speaks only this, with the same SQL.
 */

export interface Queryable {
  /** One statement with $n parameters (never prepared by name); the rows it returned. */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** Several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Where it points, without credentials (for logs). */
  readonly target: string;
  /** query() that fails with DbTimeoutError after timeoutMs, dropping the connection it used. */
  queryWithin<R = Record<string, unknown>>(
    timeoutMs: number,
    sql: string,
    params?: readonly unknown[],
  ): Promise<R[]>;
  /** fn inside BEGIN ... COMMIT on one connection (ROLLBACK when it throws). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export class DbTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`database did not answer within ${timeoutMs} ms`);
    this.name = 'DbTimeoutError';
  }
}

/** The SQLSTATE of a database error, when it carries one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Errors worth retrying later with the same rows: the database is away, restarting, overloaded or
 * slow. Anything else (a constraint, a bad value) would fail again the same way.
 */
export function isTransient(err: unknown): boolean {
  const state = sqlState(err);
  if (state === undefined) return true; // sockets, timeouts, pool errors: no SQLSTATE
  return (
    state.startsWith('08') || // connection exception
    state.startsWith('53') || // insufficient resources
    state.startsWith('57') || // operator intervention (shutdown, cancel, statement timeout)
    state.startsWith('58') || // system error
    state === '40001' || // serialization failure
    state === '40P01' || // deadlock
    state === '55P03' || // lock not available (lock_timeout)
    state === '42P01' || // relation missing: a migration has not run yet
    state === '23514' // no partition for the row (no default partition): upkeep will create it
  );
}

/** A URL with its password masked. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}
