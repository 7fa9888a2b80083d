/**
 * A forward-only migration runner: migrations/NNNN_name.sql, applied in order, each in its own
 * transaction together with its row in sluice_migrations. A transaction-scoped advisory lock
 * serialises instances starting together, and works through PgBouncer in transaction mode.
 */
import { readdir, readFile } from 'node:fs/promises';
import type { Db } from './db.ts';

/** Advisory lock keys Sluice uses (int8, 'sluice' in ASCII plus a job number). */
export const LOCK_KEYS = { migrate: 0x736c7569636501n, maintenance: 0x736c7569636502n } as const;

const DIR = new URL('./migrations/', import.meta.url);
const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export async function loadMigrations(): Promise<Migration[]> {
  const files = (await readdir(DIR)).filter((f) => FILE.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const [, version, name] = FILE.exec(file)!;
      return { version: Number(version), name: name!, sql: await readFile(new URL(file, DIR), 'utf8') };
    }),
  );
}

/** Applies what is pending; returns the versions this call applied. */
export async function migrate(db: Db, migrations?: readonly Migration[]): Promise<number[]> {
  const all = migrations ?? (await loadMigrations());
  const applied: number[] = [];
  for (const migration of all) {
    const did = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEYS.migrate.toString()]);
      await tx.exec(`CREATE TABLE IF NOT EXISTS sluice_migrations (
        version    integer     PRIMARY KEY,
        name       text        NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const done = await tx.query('SELECT 1 FROM sluice_migrations WHERE version = $1', [migration.version]);
      if (done.length > 0) return false;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO sluice_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      return true;
    });
    if (did) applied.push(migration.version);
  }
  return applied;
}
