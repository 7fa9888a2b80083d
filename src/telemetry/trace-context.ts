/**
 * W3C Trace Context: the trace id a request belongs to. Taken from the client's `traceparent`
 * when it is well formed, so the request log and the log line join the caller's trace; otherwise
 * a new one.
 */
import { randomBytes } from 'node:crypto';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The trace id of a valid traceparent header (version ff and all-zero ids are invalid). */
export function traceIdFrom(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = TRACEPARENT.exec(header.trim());
  if (!m || m[1] === 'ff' || m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return undefined;
  return m[2];
}

/** Random bytes drawn 4 KiB at a time: one randomBytes call per 256 ids, not one per request. */
const POOL_SIZE = 4096;
let pool = Buffer.alloc(0);
let offset = POOL_SIZE;

export function newTraceId(): string {
  if (offset + 16 > pool.length) {
    pool = randomBytes(POOL_SIZE);
    offset = 0;
  }
  const id = pool.toString('hex', offset, offset + 16);
  offset += 16;
  // All zeros is not a valid trace id (chance 2^-128, but cheap to rule out).
  return id === ZERO_TRACE ? newTraceId() : id;
}
