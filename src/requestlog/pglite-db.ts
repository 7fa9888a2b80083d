/**
 * The embedded default: PGlite in a worker thread (pglite-worker.ts), under a directory of its
 * own. One connection, one process: calls are serialised here, and a transaction holds the line
 * until it ends, so no other statement runs inside it.
 */
import { mkdir } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { type Db, DbTimeoutError, type Queryable } from './db.ts';

interface Pending {
  resolve(rows: unknown[]): void;
  reject(err: Error): void;
}

class PgliteError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'PgliteError';
    this.code = code;
  }
}

export class PgliteDb implements Db {
  readonly kind = 'pglite' as const;
  readonly target: string;
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  /** The tail of the line of calls: each waits for the one before (one connection). */
  #line: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(worker: Worker, target: string) {
    this.#worker = worker;
    this.target = target;
    worker.on(
      'message',
      (m: { id: number; rows?: unknown[]; error?: { message: string; code?: string } }) => {
        const pending = this.#pending.get(m.id);
        if (!pending) return;
        this.#pending.delete(m.id);
        if (m.error) pending.reject(new PgliteError(m.error.message, m.error.code));
        else pending.resolve(m.rows ?? []);
      },
    );
    worker.on('error', (err) => this.#failAll(err));
    worker.on('exit', () => this.#failAll(new Error('the PGlite worker exited')));
  }

  /** Opens (creating it when new) the database in dataDir, or in memory when dataDir is undefined. */
  static async open(dataDir: string | undefined): Promise<PgliteDb> {
    if (dataDir !== undefined) await mkdir(dataDir, { recursive: true });
    const worker = new Worker(new URL('./pglite-worker.ts', import.meta.url), { workerData: { dataDir } });
    // Idle, the database does not keep the process alive; a call in progress does (#send).
    worker.unref();
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (m: { ready: boolean; error?: { message: string } }) =>
        m.ready ? resolve() : reject(new Error(`PGlite: ${m.error?.message}`)),
      );
      worker.once('error', reject);
    });
    return new PgliteDb(worker, dataDir === undefined ? 'pglite (memory)' : `pglite ${dataDir}`);
  }

  #send(op: 'query' | 'exec' | 'close', sql?: string, params?: readonly unknown[]): Promise<unknown[]> {
    if (this.#closed && op !== 'close') return Promise.reject(new Error('the database is closed'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, op, sql, params });
    });
  }

  #failAll(err: Error): void {
    for (const pending of this.#pending.values()) pending.reject(err);
    this.#pending.clear();
  }

  /** Runs fn when every call before it is done; calls after it wait for it. */
  #inLine<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#line.then(fn, fn);
    this.#line = run.catch(() => {});
    return run;
  }

  query<R>(sql: string, params?: readonly unknown[]): Promise<R[]> {
    return this.#inLine(() => this.#send('query', sql, params)) as Promise<R[]>;
  }

  exec(sql: string): Promise<void> {
    return this.#inLine(async () => {
      await this.#send('exec', sql);
    });
  }

  /**
   * The worker cannot be interrupted: past the timeout the caller gets DbTimeoutError and the
   * statement still completes in the line (a retried insert is then a no-op).
   */
  queryWithin<R>(timeoutMs: number, sql: string, params?: readonly unknown[]): Promise<R[]> {
    const query = this.query<R>(sql, params);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DbTimeoutError(timeoutMs)), timeoutMs);
    });
    return Promise.race([query, timeout]).finally(() => clearTimeout(timer));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const tx: Queryable = {
      query: async <R>(sql: string, params?: readonly unknown[]) =>
        (await this.#send('query', sql, params)) as R[],
      exec: async (sql: string) => {
        await this.#send('exec', sql);
      },
    };
    return this.#inLine(async () => {
      await this.#send('exec', 'BEGIN');
      try {
        const out = await fn(tx);
        await this.#send('exec', 'COMMIT');
        return out;
      } catch (err) {
        await this.#send('exec', 'ROLLBACK').catch(() => {});
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#inLine(() => this.#send('close')).catch(() => {});
    await this.#worker.terminate();
  }
}
