/**
 * A process that records request-log rows while the database is unreachable and then waits to
 * be killed (SIGKILL: no close(), no flush), for the crash test in request-log-spill.test.ts.
 *
 *   node spill-crash-child.ts <spillDir> <unreachable database url> <rows>
 *
 * Half the rows are recorded before the writer has found the database away, half after. Once
 * the buffer is empty (or 10 s have passed) it prints one JSON line with the writer's stats.
 */
import { pino } from 'pino';
import { RequestLog } from '../../src/requestlog/request-log.ts';
import { logConfig, row } from './request-log.ts';

const [spillDir, url, count] = process.argv.slice(2);
const total = Number(count);
const requestLog = await RequestLog.open(
  logConfig({ url, spillDir, flushIntervalMs: 50, writeTimeoutMs: 1_000 }),
  {
    log: pino({ level: 'silent' }),
  },
);
const base = Date.now();
const record = (from: number, to: number) => {
  for (let i = from; i < to; i++) requestLog.record(row({ requestId: `crash-${i}`, createdAtMs: base + i }));
};
const until = async (predicate: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!predicate() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
};

record(0, total / 2);
await until(() => !requestLog.writer.stats().healthy, 10_000);
record(total / 2, total);
await until(() => {
  const s = requestLog.writer.stats();
  return s.buffered === 0 && s.spilling === 0 && s.writing === 0;
}, 10_000);
process.stdout.write(`${JSON.stringify(requestLog.writer.stats())}\n`);
// Wait for the SIGKILL (bounded, should the parent be gone).
setTimeout(() => process.exit(3), 60_000);
