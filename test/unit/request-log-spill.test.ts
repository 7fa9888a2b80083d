/**
 * The spill directory on a real file system, with the faults a disk can have: a directory that
 * cannot take a file (before the file exists), a write cut short by ENOSPC (with and without a
 * truncate that works), and a replay cut short. The counts it reports must be exact: every row is
 * either in the file (and replayed once) or reported as not written.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { serializeRow } from '../../src/requestlog/row.ts';
import { SpillDir, type SpillFs } from '../../src/requestlog/spill.ts';
import { cleanups, fullDiskAfter, row } from '../helpers/request-log.ts';

async function spillDir(defer: (fn: () => unknown) => void, fs?: SpillFs): Promise<SpillDir> {
  const parent = await mkdtemp(join(tmpdir(), 'sluice-spill-unit-'));
  defer(() => rm(parent, { recursive: true, force: true }));
  const spill = new SpillDir(join(parent, 'spill'), 1024 * 1024 * 1024, fs);
  await spill.open();
  defer(() => spill.close());
  return spill;
}

const rows = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => serializeRow(row({ requestId: `${prefix}-${i}` })));

/** Replays everything and returns the request ids written, in order. */
async function replayAll(spill: SpillDir, batchRows = 50): Promise<{ ids: string[]; badLines: number }> {
  const ids: string[] = [];
  const result = await spill.replay(batchRows, async (batch) => {
    for (const r of batch) ids.push((JSON.parse(r) as { requestId: string }).requestId);
  });
  assert.equal(result.rows, ids.length);
  return { ids, badLines: result.badLines };
}

test('an append that fails before its file exists leaves nothing for replay to wait on', async (t) => {
  const defer = cleanups(t);
  const spill = await spillDir(defer);
  // Root ignores permissions, so the directory is made unusable another way: a regular file
  // stands where it was (ENOTDIR), then the directory comes back.
  const away = `${spill.dir}.away`;
  await rename(spill.dir, away);
  await writeFile(spill.dir, 'not a directory');
  const failed = await spill.append(rows('lost', 3));
  assert.equal(failed.rows, 0);
  assert.equal((failed.error as NodeJS.ErrnoException).code, 'ENOTDIR');
  assert.equal(spill.pending, false, 'no file name kept for a file that was never created');
  await rm(spill.dir);
  await rename(away, spill.dir);

  // Replay ends (it used to fail with ENOENT on every try), and later files are not stuck.
  assert.deepEqual(await replayAll(spill), { ids: [], badLines: 0 });
  assert.equal((await spill.append(rows('later', 2))).rows, 2);
  assert.deepEqual((await replayAll(spill)).ids, ['later-0', 'later-1']);
  assert.equal(spill.pending, false);
  assert.equal(spill.bytes, 0);
});

test('a spill file removed by hand is skipped, and the files behind it are replayed', async (t) => {
  const defer = cleanups(t);
  const spill = await spillDir(defer);
  await spill.append(rows('gone', 2));
  // Close the first file (a replay that fails at once), then write a second one.
  await assert.rejects(
    spill.replay(10, async () => {
      throw new Error('database away');
    }),
    /database away/,
  );
  await spill.append(rows('kept', 2));
  for (const f of await readdir(spill.dir)) {
    if ((await readFile(join(spill.dir, f), 'utf8')).includes('gone-0')) await rm(join(spill.dir, f));
  }
  assert.deepEqual((await replayAll(spill)).ids, ['kept-0', 'kept-1']);
  assert.equal(spill.pending, false);
  assert.equal(spill.bytes, 0, 'the missing file no longer counts toward maxSpillBytes');
});

test('a torn ENOSPC append: the rows that landed whole are counted and replayed, the partial one cut', async (t) => {
  const defer = cleanups(t);
  const first = rows('first', 10);
  const torn = rows('torn', 300);
  // The disk fills 137 rows and half a line into the second append.
  const landed = Buffer.byteLength(`${first.join('\n')}\n${torn.slice(0, 137).join('\n')}\n`);
  const budget = { bytes: landed + 40 };
  const spill = await spillDir(defer, fullDiskAfter(budget));

  assert.deepEqual(await spill.append(first), { rows: 10, full: false, error: undefined });
  const result = await spill.append(torn);
  assert.equal(result.rows, 137, 'the whole rows that reached the file');
  assert.equal((result.error as NodeJS.ErrnoException).code, 'ENOSPC');
  assert.equal(spill.bytes, landed, 'the partial line is not counted: it was cut away');

  budget.bytes = Number.POSITIVE_INFINITY; // room again
  assert.equal((await spill.append(rows('after', 5))).rows, 5);
  const { ids, badLines } = await replayAll(spill);
  assert.equal(badLines, 0, 'nothing glued onto a torn line');
  assert.deepEqual(ids, [
    ...first.map((r) => JSON.parse(r).requestId),
    ...torn.slice(0, 137).map((r) => JSON.parse(r).requestId),
    'after-0',
    'after-1',
    'after-2',
    'after-3',
    'after-4',
  ]);
});

test('a torn append whose clean-up fails too: a new file for the next rows, counts still exact', async (t) => {
  const defer = cleanups(t);
  const torn = rows('torn', 20);
  const whole = Buffer.byteLength(`${torn.slice(0, 7).join('\n')}\n`);
  const budget = { bytes: whole + 25 };
  const spill = await spillDir(defer, fullDiskAfter(budget, true));
  const result = await spill.append(torn);
  assert.equal(result.rows, 7);
  budget.bytes = Number.POSITIVE_INFINITY;
  assert.equal((await spill.append(rows('next', 3))).rows, 3);
  assert.equal((await readdir(spill.dir)).filter((f) => f.endsWith('.ndjson')).length, 2);
  const { ids, badLines } = await replayAll(spill);
  assert.equal(badLines, 1, 'the partial line, skipped');
  assert.equal(ids.length, 10);
  assert.deepEqual(ids.slice(7), ['next-0', 'next-1', 'next-2']);

  // A write that stops just before a row's newline: that row reads back whole, so it is counted.
  const three = rows('edge', 3);
  const edge = { bytes: Buffer.byteLength(`${three[0]}\n${three[1]}`) };
  const second = await spillDir(defer, fullDiskAfter(edge, true));
  assert.equal((await second.append(three)).rows, 2);
  assert.deepEqual(await replayAll(second), { ids: ['edge-0', 'edge-1'], badLines: 0 });
});

test('a replay cut short resumes after its last written batch: no row written twice', async (t) => {
  const defer = cleanups(t);
  const spill = await spillDir(defer);
  await spill.append(rows('r', 25));
  await spill.append(['{"torn', ...rows('s', 2)]); // a bad line among them, counted once
  const written: string[] = [];
  let calls = 0;
  const write = async (batch: string[]) => {
    if (++calls === 2) throw new Error('database went away');
    for (const r of batch) written.push(JSON.parse(r).requestId);
  };
  await assert.rejects(spill.replay(10, write), /went away/);
  assert.equal(written.length, 10);
  assert.equal(spill.pending, true);
  const result = await spill.replay(10, write);
  assert.deepEqual(result, { rows: 17, badLines: 1 });
  assert.deepEqual(written, [...Array.from({ length: 25 }, (_, i) => `r-${i}`), 's-0', 's-1']);
  assert.equal(spill.pending, false);
});
