/**
 * Partition upkeep, run at start and every maintenanceIntervalMs by every instance; one does the
 * work (pg_try_advisory_xact_lock), the others skip. It creates partitions ahead of need (moving
 * any rows the default partition caught for that range), and retires old ones by DETACH and DROP
 * (no DELETE, so no dead tuples and no vacuum storm), then ANALYZEs the parent, whose statistics
 * autovacuum never refreshes.
 *
 * DETACH ... CONCURRENTLY cannot run in a transaction block and Postgres refuses it when the
 * table has a default partition; it is used when neither stands in the way. Otherwise the
 * detach runs in the locked transaction with a lock_timeout, so writers wait at most that long.
 */
import type { Db, Queryable } from './db.ts';
import { LOCK_KEYS } from './migrate.ts';
import {
  DEFAULT_PARTITION,
  PARENT,
  type PartitionInterval,
  type PartitionRange,
  parsePartitionName,
  partitionsExpired,
  partitionsToCreate,
  timestampLiteral,
} from './partitions.ts';

export interface MaintenanceSettings {
  partitionInterval: PartitionInterval;
  partitionsAhead: number;
  retentionDays: number;
  defaultPartition: boolean;
  lockTimeoutMs: number;
}

export interface MaintenanceReport {
  /** False when another instance held the lock. */
  ran: boolean;
  created: string[];
  dropped: string[];
  /** Rows moved out of the default partition into a partition created for them. */
  rescuedRows: number;
  concurrentDetach: boolean;
}

/**
 * Autovacuum per partition: the log is insert-only, so what matters is analysing and freezing
 * early (the scale factors, not the thresholds, would let a busy day's partition grow millions of
 * rows before its first pass). Set on each partition: Postgres takes no storage parameters on a
 * partitioned parent.
 */
export const PARTITION_STORAGE = [
  'autovacuum_vacuum_scale_factor = 0.02',
  'autovacuum_vacuum_insert_scale_factor = 0.05',
  'autovacuum_analyze_scale_factor = 0.02',
  'autovacuum_vacuum_cost_limit = 1000',
].join(', ');

interface Child {
  name: string;
  detachPending: boolean;
}

export async function runMaintenance(
  db: Db,
  settings: MaintenanceSettings,
  nowMs: number = Date.now(),
): Promise<MaintenanceReport> {
  const report: MaintenanceReport = {
    ran: false,
    created: [],
    dropped: [],
    rescuedRows: 0,
    concurrentDetach: false,
  };
  let toDetachConcurrently: PartitionRange[] = [];
  await db.transaction(async (tx) => {
    const [lock] = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [
      LOCK_KEYS.maintenance.toString(),
    ]);
    if (!lock?.locked) return;
    report.ran = true;
    await tx.exec(`SET LOCAL lock_timeout = '${Math.floor(settings.lockTimeoutMs)}ms'`);
    const children = await listChildren(tx);
    let hasDefault = children.some((c) => c.name === DEFAULT_PARTITION);
    if (settings.defaultPartition && !hasDefault) {
      await tx.exec(
        `CREATE TABLE ${DEFAULT_PARTITION} PARTITION OF ${PARENT} DEFAULT WITH (${PARTITION_STORAGE})`,
      );
      hasDefault = true;
    }
    const ranges = children
      .filter((c) => !c.detachPending)
      .map((c) => parsePartitionName(c.name))
      .filter((r): r is PartitionRange => r !== undefined);
    for (const p of partitionsToCreate(nowMs, settings.partitionInterval, settings.partitionsAhead, ranges)) {
      report.rescuedRows += await createPartition(tx, p, hasDefault);
      report.created.push(p.name);
    }
    const expired = partitionsExpired(nowMs, settings.retentionDays, ranges);
    report.concurrentDetach = !hasDefault && db.kind === 'postgres';
    if (report.concurrentDetach) {
      toDetachConcurrently = expired;
      return;
    }
    for (const p of expired) {
      await tx.exec(`ALTER TABLE ${PARENT} DETACH PARTITION ${p.name}`);
      await tx.exec(`DROP TABLE ${p.name}`);
      report.dropped.push(p.name);
    }
  });
  // Outside the transaction: DETACH CONCURRENTLY runs as two transactions of its own. Another
  // instance that takes the lock meanwhile sees these as detach-pending and leaves them alone.
  for (const p of toDetachConcurrently) {
    await db.exec(`ALTER TABLE ${PARENT} DETACH PARTITION ${p.name} CONCURRENTLY`);
    await db.exec(`DROP TABLE ${p.name}`);
    report.dropped.push(p.name);
  }
  if (report.dropped.length > 0) await db.exec(`ANALYZE ${PARENT}`);
  return report;
}

async function listChildren(tx: Queryable): Promise<Child[]> {
  const rows = await tx.query<{ name: string; detach_pending: boolean }>(
    `SELECT c.relname AS name, i.inhdetachpending AS detach_pending
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = '${PARENT}'::regclass`,
  );
  return rows.map((r) => ({ name: r.name, detachPending: r.detach_pending }));
}

/**
 * Creates one partition. When the default partition already holds rows of its range (written
 * while the partition was missing), Postgres would refuse the new partition: those rows are moved
 * into it first, in the same transaction. Returns the rows moved.
 */
async function createPartition(tx: Queryable, p: PartitionRange, hasDefault: boolean): Promise<number> {
  const from = timestampLiteral(p.from);
  const to = timestampLiteral(p.to);
  if (hasDefault) {
    const [caught] = await tx.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${DEFAULT_PARTITION} WHERE created_at >= ${from} AND created_at < ${to}`,
    );
    if (caught && caught.n > 0) {
      await tx.exec(`CREATE TABLE ${p.name} (LIKE ${PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
        WITH (${PARTITION_STORAGE});
        INSERT INTO ${p.name} SELECT * FROM ${DEFAULT_PARTITION} WHERE created_at >= ${from} AND created_at < ${to};
        DELETE FROM ${DEFAULT_PARTITION} WHERE created_at >= ${from} AND created_at < ${to};
        ALTER TABLE ${PARENT} ATTACH PARTITION ${p.name} FOR VALUES FROM (${from}) TO (${to});`);
      return caught.n;
    }
  }
  await tx.exec(
    `CREATE TABLE ${p.name} PARTITION OF ${PARENT} FOR VALUES FROM (${from}) TO (${to}) WITH (${PARTITION_STORAGE})`,
  );
  return 0;
}
