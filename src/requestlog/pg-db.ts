/**
 * Postgres through node-postgres: the only home of `pg`. A small pool; no session state and no
 * named prepared statements, so it works through PgBouncer in transaction pooling mode.
 */
import pg from 'pg';
import { type Db, DbTimeoutError, DbUnavailableError, type Queryable, redactUrl } from './db.ts';

export interface PgDbOptions {
  url: string;
  poolSize: number;
  /** Waiting for a connection (new or from the pool) longer than this fails the call. */
  connectTimeoutMs: number;
  applicationName?: string;
  onError?: (err: Error) => void;
}

export class PgDb implements Db {
  readonly kind = 'postgres' as const;
  readonly target: string;
  readonly #pool: pg.Pool;

  constructor(options: PgDbOptions) {
    this.target = redactUrl(options.url);
    this.#pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      // application_name is one of the startup parameters PgBouncer passes on.
      application_name: options.applicationName ?? 'sluice',
    });
    // An idle connection that dies (server restart) must not crash the process.
    this.#pool.on('error', (err) => options.onError?.(err));
  }

  async query<R>(sql: string, params?: readonly unknown[]): Promise<R[]> {
    const { client, release } = await this.#checkout();
    let failure: Error | undefined;
    try {
      return (await client.query(sql, params as unknown[] | undefined)).rows as R[];
    } catch (err) {
      failure = err as Error;
      throw err;
    } finally {
      release(failure);
    }
  }

  async exec(sql: string): Promise<void> {
    await this.query(sql);
  }

  /**
   * A client from the pool. While checked out, a connection that dies emits 'error' on it (and
   * fails its query); without a listener that would crash the process. A failure here is the
   * database being unavailable, whatever SQLSTATE it came with (a 55000 or 28000 at connect says
   * nothing about the rows), hence DbUnavailableError.
   */
  async #checkout(): Promise<{ client: pg.PoolClient; release(err?: Error): void }> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw new DbUnavailableError(err);
    }
    const onError = () => {};
    client.on('error', onError);
    return {
      client,
      release(err?: Error) {
        client.off('error', onError);
        client.release(err);
      },
    };
  }

  async queryWithin<R>(timeoutMs: number, sql: string, params?: readonly unknown[]): Promise<R[]> {
    const { client, release } = await this.#checkout();
    let timer: NodeJS.Timeout | undefined;
    let failure: Error | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DbTimeoutError(timeoutMs)), timeoutMs);
      });
      const result = await Promise.race([client.query(sql, params as unknown[] | undefined), timeout]);
      return result.rows as R[];
    } catch (err) {
      failure = err as Error;
      throw err;
    } finally {
      clearTimeout(timer);
      // A connection that failed or timed out is closed, not reused (a late answer would be
      // read as the next query's).
      release(failure);
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const { client, release } = await this.#checkout();
    let failure: Error | undefined;
    try {
      await client.query('BEGIN');
      const tx: Queryable = {
        query: async <R>(sql: string, params?: readonly unknown[]) =>
          (await client.query(sql, params as unknown[] | undefined)).rows as R[],
        exec: async (sql: string) => {
          await client.query(sql);
        },
      };
      const out = await fn(tx);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: Error) => {
        failure = rollbackErr;
      });
      throw err;
    } finally {
      release(failure);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
