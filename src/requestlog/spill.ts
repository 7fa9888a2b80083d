/**
 * The spill directory: rows the database could not take, appended as JSON lines to files that
 * are replayed, oldest first, once it is back. A file is deleted only after all its rows are in
 * the database; a replay cut short starts the file again (the INSERT is idempotent). Bounded by
 * maxBytes: past it, append() refuses and the caller counts the rows as dropped.
 */
import { createReadStream } from 'node:fs';
import { appendFile, mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { lockDir } from './dir-lock.ts';
import { rowFromJson, serializeRow } from './row.ts';

const FILE = /^spill-(\d+)-(\d+)\.ndjson$/;

export interface ReplayResult {
  rows: number;
  /** Lines that were not rows (a torn last line after a crash): skipped and counted. */
  badLines: number;
}

export class SpillDir {
  readonly dir: string;
  readonly maxBytes: number;
  #bytes = 0;
  /** Closed files waiting for replay, oldest first. */
  #closed: string[] = [];
  #current: string | undefined;
  #seq = 0;
  #unlock: (() => Promise<void>) | undefined;
  /** Appends run one after another. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(dir: string, maxBytes: number) {
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  /** Creates and locks the directory and finds the files an earlier run left. */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    this.#unlock = await lockDir(this.dir);
    const files = (await readdir(this.dir)).filter((f) => FILE.test(f)).sort(byAge);
    for (const f of files) this.#bytes += (await stat(join(this.dir, f))).size;
    this.#closed = files;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Rows are waiting in files (closed or being appended to). */
  get pending(): boolean {
    return this.#closed.length > 0 || this.#current !== undefined;
  }

  /** Appends serialised rows (one per line); false (nothing written) when that would pass maxBytes. */
  append(rows: readonly string[]): Promise<boolean> {
    const run = this.#chain.then(async () => {
      if (rows.length === 0) return true;
      const text = `${rows.join('\n')}\n`;
      const size = Buffer.byteLength(text);
      if (this.#bytes + size > this.maxBytes) return false;
      this.#current ??= `spill-${Date.now()}-${this.#seq++}.ndjson`;
      await appendFile(join(this.dir, this.#current), text);
      this.#bytes += size;
      return true;
    });
    this.#chain = run.catch(() => {});
    return run;
  }

  /**
   * Replays every file closed so far (the one being appended to is closed first), passing rows in
   * batches to `write`. Stops at the first failed write and rethrows; that file stays.
   */
  async replay(batchRows: number, write: (rows: string[]) => Promise<void>): Promise<ReplayResult> {
    await this.#chain;
    if (this.#current !== undefined) {
      this.#closed.push(this.#current);
      this.#current = undefined;
    }
    const result: ReplayResult = { rows: 0, badLines: 0 };
    while (this.#closed.length > 0) {
      const file = join(this.dir, this.#closed[0]!);
      const size = (await stat(file).catch(() => ({ size: 0 }))).size;
      let batch: string[] = [];
      const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
      for await (const line of lines) {
        if (line === '') continue;
        // Checked and written again, so a damaged line cannot make the database refuse its batch.
        let row: ReturnType<typeof rowFromJson>;
        try {
          row = rowFromJson(JSON.parse(line));
        } catch {
          row = undefined;
        }
        if (row === undefined) {
          result.badLines++;
          continue;
        }
        batch.push(serializeRow(row));
        if (batch.length >= batchRows) {
          await write(batch);
          result.rows += batch.length;
          batch = [];
        }
      }
      if (batch.length > 0) {
        await write(batch);
        result.rows += batch.length;
      }
      await unlink(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      this.#closed.shift();
      this.#bytes = Math.max(0, this.#bytes - size);
    }
    return result;
  }

  async close(): Promise<void> {
    await this.#chain;
    await this.#unlock?.();
    this.#unlock = undefined;
  }
}

function byAge(a: string, b: string): number {
  const [, ta, sa] = FILE.exec(a)!;
  const [, tb, sb] = FILE.exec(b)!;
  return Number(ta) - Number(tb) || Number(sa) - Number(sb);
}
