/**
 * The log writer: requests hand it a row and return at once; rows are written in batches (one
 * INSERT per batchRows, or whatever is there every flushIntervalMs), at most maxConcurrentWrites
 * at a time, never on a request's path.
 *
 * When the database is slow or away, rows wait in the buffer (maxBufferedRows); past that, the
 * oldest batch goes to the spill directory, replayed when a write succeeds again. A failed write
 * puts its rows back and the writer probes with one batch at a time, backing off. Nothing is lost
 * unless the spill directory is full too (counted as dropped), and a retried or replayed batch is
 * a no-op for the rows already in (INSERT ... ON CONFLICT DO NOTHING on (created_at, request_id)).
 */
import type { Logger } from 'pino';
import { type Db, isTransient, sqlState } from './db.ts';
import { INSERT_SQL, insertParam, type RequestLogRow, serializeRow } from './row.ts';
import type { SpillDir } from './spill.ts';

export interface WriterSettings {
  batchRows: number;
  flushIntervalMs: number;
  maxBufferedRows: number;
  maxConcurrentWrites: number;
  writeTimeoutMs: number;
}

export type DropReason = 'spill_full' | 'spill_error' | 'spill_backlog' | 'rejected';

/** What the writer reports as it goes (metrics). */
export interface WriterObserver {
  written(rows: number, seconds: number): void;
  writeFailed(rows: number, seconds: number): void;
  spilled(rows: number): void;
  replayed(rows: number): void;
  dropped(rows: number, reason: DropReason): void;
}

export interface WriterStats {
  buffered: number;
  writing: number;
  healthy: boolean;
  /** Rows on their way to the spill file. */
  spilling: number;
  spillBytes: number;
  /** Rows in the spill directory, or on their way there. */
  spillPending: boolean;
  /** Rows dropped since start (spill directory full or failing, or refused by the database). */
  dropped: number;
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;

export class RequestLogWriter {
  readonly #db: Db;
  readonly #spill: SpillDir;
  readonly #settings: WriterSettings;
  readonly #log: Logger;
  readonly #observer: WriterObserver | undefined;
  /** Rows as JSON text, serialised when recorded (so a flush only joins strings). */
  #buffer: string[] = [];
  #writing = 0;
  /** Writes in flight and their rows. */
  readonly #writes = new Map<Promise<void>, string[]>();
  #healthy = true;
  #failures = 0;
  #retryAt = 0;
  /** Rows on their way to the spill file (bounded like the buffer). */
  #spilling = 0;
  #replaying: Promise<void> | undefined;
  #dropped = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(db: Db, spill: SpillDir, settings: WriterSettings, log: Logger, observer?: WriterObserver) {
    this.#db = db;
    this.#spill = spill;
    this.#settings = settings;
    this.#log = log;
    this.#observer = observer;
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.#settings.flushIntervalMs);
    this.#timer.unref();
    this.#tick();
  }

  /** Takes a row; never waits, never throws. */
  record(row: RequestLogRow): void {
    if (this.#closed) {
      // A request that ended after shutdown began: straight to the spill file.
      this.#spillRows([serializeRow(row)]);
      return;
    }
    this.#buffer.push(serializeRow(row));
    if (this.#buffer.length > this.#settings.maxBufferedRows) {
      this.#spillRows(this.#buffer.splice(0, this.#settings.batchRows));
    } else if (this.#buffer.length >= this.#settings.batchRows) {
      this.#pump(false);
    }
  }

  stats(): WriterStats {
    return {
      buffered: this.#buffer.length,
      writing: this.#writing,
      healthy: this.#healthy,
      spilling: this.#spilling,
      spillBytes: this.#spill.bytes,
      spillPending: this.#spilling > 0 || this.#spill.pending,
      dropped: this.#dropped,
    };
  }

  /** Writes what is buffered (waiting up to timeoutMs), spills the rest, and stops. */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const deadline = performance.now() + timeoutMs;
    while (this.#buffer.length > 0 && this.#healthy && performance.now() < deadline) {
      this.#pump(true);
      if (this.#writes.size === 0) break;
      await Promise.race([Promise.race(this.#writes.keys()), sleep(deadline - performance.now())]);
    }
    await Promise.race([Promise.all(this.#writes.keys()), sleep(Math.max(0, deadline - performance.now()))]);
    // Whatever the database did not take now waits in the spill file for the next start. Rows of
    // a write still in flight are spilled too (if it lands after all, the replay is a no-op).
    for (const rows of this.#writes.values()) this.#spillRows(rows);
    if (this.#buffer.length > 0) this.#spillRows(this.#buffer.splice(0));
    await this.#spill.append([]); // waits for the appends queued before it
  }

  #tick(): void {
    this.#pump(true);
    if (this.#healthy && this.#replaying === undefined && this.#spill.pending && this.#writing === 0) {
      this.#replay();
    }
  }

  /** Starts writes while there is room; `partial` also sends a batch smaller than batchRows. */
  #pump(partial: boolean): void {
    const { batchRows, maxConcurrentWrites } = this.#settings;
    while (this.#writing < maxConcurrentWrites && this.#buffer.length > 0) {
      if (!partial && this.#buffer.length < batchRows) return;
      if (!this.#healthy) {
        // Probing: one batch at a time, after the backoff.
        if (this.#writing > 0 || performance.now() < this.#retryAt) return;
      }
      let rows: string[];
      if (this.#buffer.length <= batchRows) {
        rows = this.#buffer;
        this.#buffer = [];
      } else {
        rows = this.#buffer.splice(0, batchRows);
      }
      const write = this.#write(rows);
      this.#writes.set(write, rows);
      void write.finally(() => this.#writes.delete(write));
      if (!this.#healthy) return;
    }
  }

  async #write(rows: string[]): Promise<void> {
    this.#writing++;
    const started = performance.now();
    try {
      const rejected = await this.#insertIsolating(rows);
      this.#observer?.written(rows.length - rejected, (performance.now() - started) / 1000);
      if (!this.#healthy)
        this.#log.info({ failures: this.#failures }, 'request log: database writes resumed');
      this.#healthy = true;
      this.#failures = 0;
    } catch (err) {
      this.#observer?.writeFailed(rows.length, (performance.now() - started) / 1000);
      // Only a transient failure gets here (#insertIsolating drops the rows the database refuses).
      this.#failures++;
      const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (this.#failures - 1));
      this.#retryAt = performance.now() + backoff * (0.5 + Math.random() / 2);
      if (this.#healthy) {
        this.#log.warn(
          { err: (err as Error).message, code: sqlState(err) },
          'request log: database write failed; buffering, then spilling to disk',
        );
      }
      this.#healthy = false;
      // Back to the front of the line; past the bound, the oldest go to the spill file.
      this.#buffer = rows.concat(this.#buffer);
      while (this.#buffer.length > this.#settings.maxBufferedRows) {
        this.#spillRows(this.#buffer.splice(0, this.#settings.batchRows));
      }
    } finally {
      this.#writing--;
    }
    if (this.#closed) return;
    if (this.#healthy && this.#spill.pending && this.#replaying === undefined) this.#replay();
    this.#pump(false);
  }

  /**
   * Inserts rows; when the database refuses a batch for its content (not for being away), halves
   * it until the rows it refuses are alone, and drops only those. Returns how many were dropped.
   * Transient errors are thrown (the caller keeps every row: the ones in already are no-ops).
   */
  async #insertIsolating(rows: readonly string[]): Promise<number> {
    try {
      await this.#insert(rows);
      return 0;
    } catch (err) {
      if (isTransient(err)) throw err;
      if (rows.length === 1) {
        this.#log.error(
          { err: (err as Error).message, code: sqlState(err) },
          'request log: database refused a row; dropped',
        );
        this.#drop(1, 'rejected');
        return 1;
      }
      const half = Math.ceil(rows.length / 2);
      return (
        (await this.#insertIsolating(rows.slice(0, half))) + (await this.#insertIsolating(rows.slice(half)))
      );
    }
  }

  #insert(rows: readonly string[]): Promise<unknown> {
    return this.#db.queryWithin(this.#settings.writeTimeoutMs, INSERT_SQL, [insertParam(rows)]);
  }

  #spillRows(rows: string[]): void {
    if (rows.length === 0) return;
    if (this.#spilling + rows.length > this.#settings.maxBufferedRows) {
      // The disk is slower than the traffic: memory stays bounded.
      this.#drop(rows.length, 'spill_backlog');
      return;
    }
    this.#spilling += rows.length;
    this.#spill.append(rows).then(
      (ok) => {
        this.#spilling -= rows.length;
        if (ok) this.#observer?.spilled(rows.length);
        else {
          this.#drop(rows.length, 'spill_full');
          this.#log.error(
            { rows: rows.length, dir: this.#spill.dir },
            'request log: spill directory full; rows dropped',
          );
        }
      },
      (err: Error) => {
        this.#spilling -= rows.length;
        this.#drop(rows.length, 'spill_error');
        this.#log.error(
          { err: err.message, dir: this.#spill.dir },
          'request log: cannot write the spill file; rows dropped',
        );
      },
    );
  }

  #drop(rows: number, reason: DropReason): void {
    this.#dropped += rows;
    this.#observer?.dropped(rows, reason);
  }

  #replay(): void {
    this.#replaying = this.#spill
      .replay(this.#settings.batchRows, async (rows) => {
        const rejected = await this.#insertIsolating(rows);
        this.#observer?.replayed(rows.length - rejected);
      })
      .then(
        (result) => {
          if (result.rows > 0 || result.badLines > 0) {
            this.#log.info(
              { rows: result.rows, badLines: result.badLines },
              'request log: spilled rows replayed',
            );
          }
        },
        (err: Error) => {
          this.#log.warn(
            { err: err.message, code: sqlState(err) },
            'request log: replay stopped; will retry',
          );
        },
      )
      .finally(() => {
        this.#replaying = undefined;
      });
  }

  /** Resolves once a replay in progress has ended (tests and shutdown). */
  async idle(): Promise<void> {
    await Promise.all(this.#writes.keys());
    await this.#replaying;
  }
}

const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, Math.max(0, ms));
    t.unref?.();
  });
