/**
 * Partition arithmetic, pure: which partitions should exist at a given time, which are past their
 * retention. Partitions are named after the UTC start of their range (request_log_p20261129 for a
 * day, request_log_p2026112913 for an hour), so their range can be read back from the name.
 */

export type PartitionInterval = 'hour' | 'day';

export interface PartitionRange {
  readonly name: string;
  /** Inclusive start, epoch ms (UTC). */
  readonly from: number;
  /** Exclusive end, epoch ms. */
  readonly to: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const PARENT = 'request_log';
export const DEFAULT_PARTITION = 'request_log_default';
const NAME = /^request_log_p(\d{4})(\d{2})(\d{2})(\d{2})?$/;

const lengthOf = (interval: PartitionInterval) => (interval === 'day' ? DAY : HOUR);

/** The partition holding the instant `ms`. */
export function partitionAt(ms: number, interval: PartitionInterval): PartitionRange {
  const length = lengthOf(interval);
  const from = Math.floor(ms / length) * length;
  return { name: nameOf(from, interval), from, to: from + length };
}

function nameOf(from: number, interval: PartitionInterval): string {
  const iso = new Date(from).toISOString(); // 2026-11-29T13:00:00.000Z
  const day = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}`;
  return `${PARENT}_p${day}${interval === 'hour' ? iso.slice(11, 13) : ''}`;
}

/** The range a partition name stands for, or undefined for a name Sluice did not make. */
export function parsePartitionName(name: string): PartitionRange | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  const from = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), m[4] === undefined ? 0 : Number(m[4]));
  const range = { name, from, to: from + (m[4] === undefined ? DAY : HOUR) };
  // Reject names whose digits do not round-trip (2026-13-45 and the like).
  return nameOf(from, m[4] === undefined ? 'day' : 'hour') === name ? range : undefined;
}

/**
 * The partitions that should exist now: the current one and `ahead` after it, leaving out any
 * that would overlap an existing partition (after a change of interval, the old ones stay).
 */
export function partitionsToCreate(
  nowMs: number,
  interval: PartitionInterval,
  ahead: number,
  existing: readonly PartitionRange[],
): PartitionRange[] {
  const out: PartitionRange[] = [];
  let next = partitionAt(nowMs, interval);
  for (let i = 0; i <= ahead; i++) {
    if (!existing.some((e) => e.from < next.to && next.from < e.to)) out.push(next);
    next = partitionAt(next.to, interval);
  }
  return out;
}

/** Partitions whose whole range ended more than retentionDays ago, oldest first. */
export function partitionsExpired(
  nowMs: number,
  retentionDays: number,
  existing: readonly PartitionRange[],
): PartitionRange[] {
  const cutoff = nowMs - retentionDays * DAY;
  return existing.filter((p) => p.to <= cutoff).sort((a, b) => a.from - b.from);
}

/** A timestamptz literal for DDL (bounds cannot be bind parameters). */
export function timestampLiteral(ms: number): string {
  return `'${new Date(ms).toISOString()}'`;
}
