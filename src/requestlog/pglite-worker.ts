/**
 * The embedded database's thread: PGlite (Postgres compiled to WebAssembly) runs its queries
 * synchronously, so it lives here and not on the gateway's event loop. The only home of PGlite.
 * Messages: { id, op: 'query' | 'exec' | 'close', sql?, params? } -> { id, rows } | { id, error }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

interface Message {
  id: number;
  op: 'query' | 'exec' | 'close';
  sql?: string;
  params?: unknown[];
}

const port = parentPort!;
const { dataDir } = workerData as { dataDir: string | undefined };

try {
  const db = await PGlite.create(dataDir === undefined ? {} : { dataDir });
  port.on('message', async (message: Message) => {
    try {
      if (message.op === 'query') {
        const result = await db.query(message.sql!, message.params ?? []);
        port.postMessage({ id: message.id, rows: result.rows });
      } else if (message.op === 'exec') {
        await db.exec(message.sql!);
        port.postMessage({ id: message.id, rows: [] });
      } else {
        await db.close();
        port.postMessage({ id: message.id, rows: [] });
        port.close();
      }
    } catch (err) {
      const e = err as { message?: string; code?: string };
      port.postMessage({ id: message.id, error: { message: String(e.message), code: e.code } });
    }
  });
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ ready: false, error: { message: String((err as Error).message) } });
}
