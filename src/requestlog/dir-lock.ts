/**
 * One process per directory (the spill directory, embedded PGlite's data): a lock file holding the
 * owner's pid, taken with O_EXCL. A lock left by a process that no longer runs is taken over.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { resolve } from 'node:path';

export class DirLockedError extends Error {}

/** Lock files this process holds (a second open in the same process is refused too). */
const held = new Set<string>();

export async function lockDir(dir: string): Promise<() => Promise<void>> {
  const path = resolve(dir, '.sluice.lock');
  if (held.has(path)) throw new DirLockedError(`${dir} is in use by process ${process.pid} (this one)`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      held.add(path);
      return async () => {
        held.delete(path);
        await unlink(path).catch(() => {});
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      // A pid of ours not in `held` is a lock an earlier process with the same pid left.
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new DirLockedError(`${dir} is in use by process ${owner} (one Sluice instance per directory)`);
      }
      await unlink(path).catch(() => {});
    }
  }
  throw new DirLockedError(`could not lock ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
