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
 * No connection could be had (connect refused or timed out, TLS, authentication, a database that is
 * missing or does not allow connections, a pool that gave none): the database is unavailable,
 * whatever it said, and the rows were never looked at. Keeps the SQLSTATE, when there was one, for
 * the logs.
 */
export class DbUnavailableError extends Error {
  readonly code: string | undefined;
  constructor(cause: unknown) {
    super(`cannot get a database connection: ${(cause as Error | null)?.message ?? String(cause)}`, {
      cause,
    });
    this.name = 'DbUnavailableError';
    this.code = sqlState(cause);
  }
}

/**
 * Errors worth retrying later with the same rows: everything except a database that was reached,
 * ran the INSERT and refused the rows for their content (22 data exception, 23 integrity
 * constraint, 54 a value past a limit), which would fail again the same way. A failure to connect
 * is transient whatever its SQLSTATE (28 auth, 3D000 no such database, 55000 connections not
 * allowed), and so is anything the rows cannot cause (08 connection, 53 resources, 57 shutdown or
 * cancel, 40 serialization, 42 a schema not migrated yet, ...): the rows are kept and replayed, and
 * a broken setup shows as `database_up 0` rather than as rows dropped one by one.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof DbUnavailableError) return true;
  const state = sqlState(err);
  if (state === undefined) return true; // sockets, timeouts, pool errors: no SQLSTATE
  if (state === '23514') return true; // no partition for the row (no default partition): upkeep creates it
  return !(state.startsWith('22') || state.startsWith('23') || state.startsWith('54'));
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
