/**
 * The spill directory: rows the database could not take, appended as JSON lines to files that
 * are replayed, oldest first, once it is back. A file is deleted only after all its rows are in
 * the database. Bounded by maxBytes: past it, append() refuses and the caller counts the rows as
 * dropped.
 *
 * Every count is exact, because the writer's metrics add up to the rows it was given:
 * - append() reports how many whole rows reached the file. A write cut short (ENOSPC after a
 *   short write) keeps the rows that landed whole and truncates the partial line away, so the next
 *   append cannot glue a row onto it and replay sees exactly the rows reported.
 * - A file name is kept only once the file exists: an append that failed before (a read-only or
 *   missing directory) leaves nothing for replay to wait on.
 * - A replay cut short (the database went away again) resumes after the last batch it wrote, so
 *   no row is replayed, or counted, twice.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { lockDir } from './dir-lock.ts';
import { rowFromJson, serializeRow } from './row.ts';

const FILE = /^spill-(\d+)-(\d+)\.ndjson$/;
const NEWLINE = 0x0a;

export interface ReplayResult {
  rows: number;
  /** Lines that were not rows (a torn last line after a crash): skipped and counted. */
  badLines: number;
}

/** What an append did: `rows` whole rows are in the file; the rest are not (the caller drops them). */
export interface AppendResult {
  rows: number;
  /** Nothing was written: that would have passed maxBytes. */
  full: boolean;
  /** The write failed after `rows` rows (none when the file could not even be opened). */
  error: Error | undefined;
}

/** The file operations the spill directory uses; node:fs by default, a faulty one in tests. */
export interface SpillFs {
  open(path: string, flags: 'a'): Promise<SpillFile>;
}

export interface SpillFile {
  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
  truncate(length: number): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

const NODE_FS: SpillFs = { open: (path, flags) => open(path, flags) };

export class SpillDir {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #fs: SpillFs;
  #bytes = 0;
  /** Closed files waiting for replay, oldest first. */
  #closed: string[] = [];
  /** The file appends go to; set only once it exists. */
  #current: string | undefined;
  #seq = 0;
  /** Lines of the oldest closed file already replayed (and counted) by a replay cut short. */
  #headLinesDone = 0;
  #unlock: (() => Promise<void>) | undefined;
  /** Appends run one after another. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(dir: string, maxBytes: number, fs: SpillFs = NODE_FS) {
    this.dir = dir;
    this.maxBytes = maxBytes;
    this.#fs = fs;
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

  /** Appends serialised rows (one per line). Never rejects: the result says what was written. */
  append(rows: readonly string[]): Promise<AppendResult> {
    const run = this.#chain
      .then(() => this.#append(rows))
      .catch((err: Error): AppendResult => ({ rows: 0, full: false, error: err }));
    this.#chain = run;
    return run;
  }

  async #append(rows: readonly string[]): Promise<AppendResult> {
    if (rows.length === 0) return { rows: 0, full: false, error: undefined };
    const data = Buffer.from(`${rows.join('\n')}\n`);
    if (this.#bytes + data.length > this.maxBytes) return { rows: 0, full: true, error: undefined };
    const name = this.#current ?? `spill-${Date.now()}-${this.#seq++}.ndjson`;
    let file: SpillFile;
    try {
      file = await this.#fs.open(join(this.dir, name), 'a');
    } catch (err) {
      // Not created: the name is not kept, so replay has no missing file to wait on.
      return { rows: 0, full: false, error: err as Error };
    }
    this.#current = name;
    let start = 0;
    let written = 0;
    try {
      start = (await file.stat()).size;
      while (written < data.length) {
        const { bytesWritten } = await file.write(data, written, data.length - written);
        if (bytesWritten <= 0)
          throw Object.assign(new Error('spill file write made no progress'), { code: 'EIO' });
        written += bytesWritten;
      }
      this.#bytes += written;
      return { rows: rows.length, full: false, error: undefined };
    } catch (err) {
      return { ...(await this.#tornWrite(file, data, start, written)), full: false, error: err as Error };
    } finally {
      await file.close().catch(() => {});
    }
  }

  /**
   * A write that stopped after `written` bytes: keeps the whole rows and cuts the partial one
   * away. Returns how many rows are in the file.
   */
  async #tornWrite(file: SpillFile, data: Buffer, start: number, written: number): Promise<{ rows: number }> {
    const whole = written === 0 ? 0 : data.lastIndexOf(NEWLINE, written - 1) + 1;
    const rows = countLines(data, whole);
    if (whole === written) {
      this.#bytes += written;
      return { rows };
    }
    try {
      await file.truncate(start + whole);
      this.#bytes += whole;
      return { rows };
    } catch {
      // The partial line stays: the next append starts a new file so nothing is glued to it, and
      // replay skips it as a bad line. A row that lacks only its newline reads back whole.
      this.#bytes += written;
      this.#rotate();
      return { rows: data.indexOf(NEWLINE, whole) === written ? rows + 1 : rows };
    }
  }

  /** Closes the file being appended to, so replay takes it and new rows go to a new one. */
  #rotate(): void {
    if (this.#current === undefined) return;
    this.#closed.push(this.#current);
    this.#current = undefined;
  }

  /**
   * Replays every file closed so far (the one being appended to is closed first), passing rows in
   * batches to `write`. Stops at the first failed write and rethrows; that file stays, and the
   * next replay resumes after its last written batch.
   */
  async replay(batchRows: number, write: (rows: string[]) => Promise<void>): Promise<ReplayResult> {
    await this.#chain;
    this.#rotate();
    const result: ReplayResult = { rows: 0, badLines: 0 };
    while (this.#closed.length > 0) {
      const file = join(this.dir, this.#closed[0]!);
      let size: number;
      try {
        size = (await stat(file)).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        // Gone (removed by hand): nothing to replay, and nothing to wait for.
        this.#closed.shift();
        this.#headLinesDone = 0;
        await this.#recount();
        continue;
      }
      const skip = this.#headLinesDone;
      let line = 0;
      let batch: string[] = [];
      const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
      for await (const text of lines) {
        line++;
        if (line <= skip) continue;
        if (text !== '') {
          // Checked and written again, so a damaged line cannot make the database refuse its batch.
          const row = parseRow(text);
          if (row === undefined) result.badLines++;
          else batch.push(row);
        }
        if (batch.length >= batchRows) {
          await write(batch);
          result.rows += batch.length;
          batch = [];
          this.#headLinesDone = line;
        }
      }
      if (batch.length > 0) {
        await write(batch);
        result.rows += batch.length;
      }
      // All written: should the unlink fail, a later replay does not write these rows again.
      this.#headLinesDone = line;
      await unlink(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      this.#closed.shift();
      this.#headLinesDone = 0;
      this.#bytes = Math.max(0, this.#bytes - size);
    }
    return result;
  }

  /** Bytes from the files themselves, after one went missing (its size is unknown now). */
  async #recount(): Promise<void> {
    let bytes = 0;
    for (const f of this.#current === undefined ? this.#closed : [...this.#closed, this.#current]) {
      bytes += (await stat(join(this.dir, f)).catch(() => ({ size: 0 }))).size;
    }
    this.#bytes = bytes;
  }

  async close(): Promise<void> {
    await this.#chain;
    await this.#unlock?.();
    this.#unlock = undefined;
  }
}

function parseRow(text: string): string | undefined {
  try {
    const row = rowFromJson(JSON.parse(text));
    return row === undefined ? undefined : serializeRow(row);
  } catch {
    return undefined;
  }
}

function countLines(data: Buffer, end: number): number {
  let n = 0;
  for (let i = data.indexOf(NEWLINE); i >= 0 && i < end; i = data.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

function byAge(a: string, b: string): number {
  const [, ta, sa] = FILE.exec(a)!;
  const [, tb, sb] = FILE.exec(b)!;
  return Number(ta) - Number(tb) || Number(sa) - Number(sb);
}
