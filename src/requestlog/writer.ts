/**
 * The log writer: requests hand it a row and return at once; rows are written in batches (one
 * INSERT per batchRows, or whatever is there every flushIntervalMs), at most maxConcurrentWrites
 * at a time, never on a request's path.
 *
 * When the database is away (a write failed), rows go to the spill directory as they come, once
 * per flush tick, so a crash then loses at most one flush interval of rows rather than a whole
 * buffer; the writer probes by replaying the spill files, backing off, and a successful write
 * replays the rest. Should the spill directory refuse them (full, or not writable), rows wait in
 * the buffer (maxBufferedRows), and past that the oldest batch is tried on disk again and dropped
 * (counted) if it fails. A retried or replayed batch is a no-op for the rows already in
 * (INSERT ... ON CONFLICT DO NOTHING on (created_at, request_id)).
 *
 * Every row recorded is counted once, when its fate is known: written (directly or replayed) or
 * dropped with a reason; spilled counts rows that reached the spill directory on their way.
 */
import type { Logger } from 'pino';
import { type Db, isTransient, sqlState } from './db.ts';
import { INSERT_SQL, insertParam, type RequestLogRow, serializeRow } from './row.ts';
import type { AppendResult, SpillDir } from './spill.ts';

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
  /** Rows replayed from the spill directory by one batch INSERT (they are written too). */
  replayed(rows: number, seconds: number): void;
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
  /** The spill directory refused rows lately (full or not writable): they wait in memory. */
  spillFailing: boolean;
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
/** After the spill directory refused rows, how long they stay in memory before it is tried again. */
const SPILL_RETRY_MS = 1_000;

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
  /** The spill directory refused rows; until #spillRetryAt they wait in the buffer instead. */
  #spillFailing = false;
  #spillRetryAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** close() has spilled the rows of the writes still in flight: their outcome is the next start's. */
  #final = false;

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
      spillFailing: this.#spillFailing,
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
    // a write still in flight are spilled too (if it lands after all, the replay is a no-op), and
    // counted by the next start, which replays them.
    this.#final = true;
    for (const rows of this.#writes.values()) this.#spillRows(rows);
    if (this.#buffer.length > 0) this.#spillRows(this.#buffer.splice(0));
    await this.#spill.append([]); // waits for the appends queued before it
  }

  #tick(): void {
    // The database is away: rows go to disk now, not at the buffer's bound, so a crash loses at
    // most what came in since the last tick.
    if (!this.#healthy) this.#spillThrough();
    this.#pump(true);
    // Unhealthy, the replay is the probe (the buffer is on disk), after the backoff.
    if (
      this.#replaying === undefined &&
      this.#spill.pending &&
      this.#writing === 0 &&
      (this.#healthy || performance.now() >= this.#retryAt)
    ) {
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
      // After close() spilled these rows, the next start counts them (its replay is a no-op).
      if (!this.#final) this.#observer?.written(rows.length - rejected, (performance.now() - started) / 1000);
      this.#writeSucceeded();
    } catch (err) {
      this.#observer?.writeFailed(rows.length, (performance.now() - started) / 1000);
      // Only a transient failure gets here (#insertIsolating drops the rows the database refuses).
      this.#writeFailed(err);
      if (!this.#final) {
        // Back to the front of the line, and on to disk (past the bound, the oldest batches).
        this.#buffer = rows.concat(this.#buffer);
        this.#trimBuffer();
        if (!this.#closed) this.#spillThrough();
      }
    } finally {
      this.#writing--;
    }
    if (this.#closed) return;
    if (this.#healthy && this.#spill.pending && this.#replaying === undefined) this.#replay();
    this.#pump(false);
  }

  #writeSucceeded(): void {
    if (!this.#healthy) this.#log.info({ failures: this.#failures }, 'request log: database writes resumed');
    this.#healthy = true;
    this.#failures = 0;
  }

  #writeFailed(err: unknown): void {
    this.#failures++;
    const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (this.#failures - 1));
    this.#retryAt = performance.now() + backoff * (0.5 + Math.random() / 2);
    if (this.#healthy) {
      this.#log.warn(
        { err: (err as Error).message, code: sqlState(err) },
        'request log: database write failed; spilling rows to disk until it is back',
      );
    }
    this.#healthy = false;
  }

  /** Past maxBufferedRows, the oldest batches go to the spill file (or are dropped, counted). */
  #trimBuffer(): void {
    while (this.#buffer.length > this.#settings.maxBufferedRows) {
      this.#spillRows(this.#buffer.splice(0, this.#settings.batchRows));
    }
  }

  /**
   * Moves the whole buffer to the spill file (the database is away). One such append at a time;
   * rows the spill directory refuses come back to the buffer, which it then stops using for
   * SPILL_RETRY_MS, so a full or read-only disk costs nothing more than before.
   */
  #spillThrough(): void {
    if (this.#buffer.length === 0 || this.#spilling > 0 || performance.now() < this.#spillRetryAt) return;
    const rows = this.#buffer;
    this.#buffer = [];
    this.#spilling += rows.length;
    void this.#spill.append(rows).then((result) => {
      this.#spilling -= rows.length;
      if (result.rows > 0) this.#observer?.spilled(result.rows);
      if (result.rows === rows.length) {
        if (this.#spillFailing) {
          this.#spillFailing = false;
          this.#log.info({ dir: this.#spill.dir }, 'request log: spill directory writable again');
        }
        return;
      }
      const rest = rows.slice(result.rows);
      if (this.#final) {
        this.#dropUnspilled(rest.length, result);
        return;
      }
      this.#spillRetryAt = performance.now() + SPILL_RETRY_MS;
      if (!this.#spillFailing) {
        this.#spillFailing = true;
        this.#log.warn(
          { err: result.error?.message, full: result.full, rows: rest.length, dir: this.#spill.dir },
          'request log: the spill directory refused rows; keeping them in memory',
        );
      }
      this.#buffer = rest.concat(this.#buffer);
      this.#trimBuffer();
    });
  }

  /**
   * Inserts rows; when the database refuses a batch for its content (not for being away), halves
   * it until the rows it refuses are alone, and drops only those. Returns how many were dropped.
   * Transient errors are thrown (the caller keeps every row: the ones in already are no-ops), and
   * then nothing is dropped yet: the refused rows come back with the retry and are counted once.
   */
  async #insertIsolating(rows: readonly string[]): Promise<number> {
    const refused: unknown[] = [];
    await this.#isolate(rows, refused);
    for (const err of refused) {
      this.#log.error(
        { err: (err as Error).message, code: sqlState(err) },
        'request log: database refused a row; dropped',
      );
    }
    if (refused.length > 0) this.#drop(refused.length, 'rejected');
    return refused.length;
  }

  async #isolate(rows: readonly string[], refused: unknown[]): Promise<void> {
    try {
      await this.#insert(rows);
    } catch (err) {
      if (isTransient(err)) throw err;
      if (rows.length === 1) {
        refused.push(err);
        return;
      }
      const half = Math.ceil(rows.length / 2);
      await this.#isolate(rows.slice(0, half), refused);
      await this.#isolate(rows.slice(half), refused);
    }
  }

  #insert(rows: readonly string[]): Promise<unknown> {
    return this.#db.queryWithin(this.#settings.writeTimeoutMs, INSERT_SQL, [insertParam(rows)]);
  }

  /** Appends rows to the spill file; the ones it does not take are dropped (counted). */
  #spillRows(rows: string[]): void {
    if (rows.length === 0) return;
    if (this.#spilling + rows.length > this.#settings.maxBufferedRows) {
      // The disk is slower than the traffic: memory stays bounded.
      this.#drop(rows.length, 'spill_backlog');
      return;
    }
    this.#spilling += rows.length;
    void this.#spill.append(rows).then((result) => {
      this.#spilling -= rows.length;
      if (result.rows > 0) this.#observer?.spilled(result.rows);
      if (result.rows < rows.length) this.#dropUnspilled(rows.length - result.rows, result);
    });
  }

  /** Rows an append did not take: dropped, with why (a torn append keeps the rows that landed). */
  #dropUnspilled(rows: number, result: AppendResult): void {
    if (result.full) {
      this.#drop(rows, 'spill_full');
      this.#log.error({ rows, dir: this.#spill.dir }, 'request log: spill directory full; rows dropped');
    } else {
      this.#drop(rows, 'spill_error');
      this.#log.error(
        { rows, err: result.error?.message, dir: this.#spill.dir },
        'request log: cannot write the spill file; rows dropped',
      );
    }
  }

  #drop(rows: number, reason: DropReason): void {
    this.#dropped += rows;
    this.#observer?.dropped(rows, reason);
  }

  /** Replays the spill files; while the database is away, its first batch is the probe. */
  #replay(): void {
    let databaseFailed = false;
    this.#replaying = this.#spill
      .replay(this.#settings.batchRows, async (rows) => {
        const started = performance.now();
        let rejected: number;
        try {
          rejected = await this.#insertIsolating(rows);
        } catch (err) {
          databaseFailed = true;
          this.#observer?.writeFailed(rows.length, (performance.now() - started) / 1000);
          this.#writeFailed(err);
          throw err;
        }
        this.#observer?.replayed(rows.length - rejected, (performance.now() - started) / 1000);
        this.#writeSucceeded();
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
          // A database failure was logged when it began (#writeFailed); a file one is news.
          if (databaseFailed) return;
          this.#log.warn(
            { err: err.message, code: (err as NodeJS.ErrnoException).code },
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
