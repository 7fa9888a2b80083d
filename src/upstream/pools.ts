/**
 * One undici Pool per upstream origin, behind a single Dispatcher so both Sluice's own calls and
 * the pass-through proxy share the same keep-alive connections. On a config reload the pools are
 * reconciled: an origin whose settings did not change keeps its warm pool; a changed or removed
 * one is closed gracefully (queued and running requests finish first).
 */
import type { Socket } from 'node:net';
import { buildConnector, Dispatcher, errors, Pool } from 'undici';

export interface OriginSettings {
  connections: number;
  connectTimeoutMs: number;
}

interface Entry {
  pool: Pool;
  settings: OriginSettings;
}

export class UpstreamPools extends Dispatcher {
  readonly #pools = new Map<string, Entry>();
  #closed = false;

  /** Make the pool set match `origins`. Returns the origins whose pools were (re)created. */
  configure(origins: ReadonlyMap<string, OriginSettings>): string[] {
    const created: string[] = [];
    for (const [origin, settings] of origins) {
      const current = this.#pools.get(origin);
      if (
        current &&
        current.settings.connections === settings.connections &&
        current.settings.connectTimeoutMs === settings.connectTimeoutMs
      ) {
        continue;
      }
      this.#pools.set(origin, { pool: createPool(origin, settings), settings });
      if (current) void current.pool.close();
      created.push(origin);
    }
    for (const [origin, entry] of this.#pools) {
      if (!origins.has(origin)) {
        this.#pools.delete(origin);
        void entry.pool.close();
      }
    }
    return created;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = String(options.origin);
    const entry = this.#pools.get(origin);
    if (!entry || this.#closed) {
      // Only configured origins are dialled: a reload that removed this origin raced the request.
      handler.onResponseError?.(
        null as never,
        new Error(this.#closed ? 'upstream pools are closed' : `no pool for origin ${origin}`),
      );
      return false;
    }
    return entry.pool.dispatch(options, handler);
  }

  /** Connections open/busy per origin, for metrics and the admin API. */
  stats(): Array<{ origin: string; connected: number; busy: number; pending: number; size: number }> {
    return [...this.#pools].map(([origin, { pool }]) => ({
      origin,
      connected: pool.stats.connected,
      busy: pool.stats.running,
      pending: pool.stats.pending,
      size: pool.stats.size,
    }));
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    const done = Promise.all([...this.#pools.values()].map((e) => e.pool.close())).then(() =>
      this.#pools.clear(),
    );
    if (!callback) return done;
    void done.then(callback, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    this.#closed = true;
    const err = typeof a === 'function' ? null : (a ?? null);
    const callback = typeof a === 'function' ? a : b;
    const done = Promise.all([...this.#pools.values()].map((e) => e.pool.destroy(err))).then(() =>
      this.#pools.clear(),
    );
    if (!callback) return done;
    void done.then(callback, callback);
  }
}

function createPool(origin: string, settings: OriginSettings): Pool {
  return new Pool(origin, {
    connections: settings.connections,
    pipelining: 1,
    connect: preciseConnector(settings.connectTimeoutMs),
    // Providers close idle keep-alive sockets after a few seconds; undici honours their
    // Keep-Alive hint and otherwise recycles sockets idle for longer than this.
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 60_000,
  });
}

/**
 * undici's own connect timeout runs on its coarse timer wheel (500 ms ticks), so a 200 ms connect
 * timeout can fire after a second, past the first-token timeout it must precede. This connector
 * keeps undici's socket setup and adds a native timer with the configured precision.
 */
function preciseConnector(timeoutMs: number): buildConnector.connector {
  // undici's timer stays as a backstop, well behind ours.
  const connect = buildConnector({ timeout: timeoutMs * 4 + 1_000 });
  return (options, callback) => {
    let settled = false;
    let socket: Socket | undefined;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      socket?.destroy();
      callback(new errors.ConnectTimeoutError(`Connect timeout after ${timeoutMs} ms`), null);
    }, timeoutMs);
    socket = connect(options, (err, connected) => {
      clearTimeout(timer);
      if (settled) {
        connected?.destroy();
        return;
      }
      settled = true;
      if (err) callback(err, null);
      else callback(null, connected!);
    }) as Socket | undefined;
  };
}
