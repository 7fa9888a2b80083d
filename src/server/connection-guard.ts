/**
 * Connection-level defences of the API server: the HTTP timeouts that bound how long a client may
 * take to send a request, and a cap on the connections one client address may hold open.
 *
 * Node's semantics, checked by test/integration/slow-clients.test.ts: `headersTimeout` and
 * `requestTimeout` both run from a connection's first byte (or a keep-alive request's) and stop
 * once the whole request is received, so neither can cut a request waiting on its provider or a
 * stream with quiet gaps; Node checks them every `connectionsCheckingInterval` (30 s by default,
 * which let a slowloris hold a socket for 90 s) and answers through `clientError`.
 * `keepAliveTimeout` bounds the idle time between requests. The socket inactivity timeout
 * (`server.timeout`) stays off: it would cut long silent waits for a first token.
 */
import type { Server } from 'node:http';
import type { BlockList, Socket } from 'node:net';
import type { Logger } from 'pino';
import { compileTrustedProxies, isTrusted, normalizeAddress } from '../auth/client-address.ts';
import { SluiceError } from '../errors/sluice-error.ts';
import { LogThrottle } from '../telemetry/log-throttle.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { rawErrorResponse } from './error-handler.ts';

export interface ConnectionSettings {
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxConnectionsPerAddress: number;
  readonly trustedProxies: readonly string[];
}

/** `http.createServer` options; the checking interval cannot change after creation. */
export function httpServerOptions(settings: ConnectionSettings): {
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  const { headersTimeout, requestTimeout } = timeouts(settings);
  return {
    headersTimeout,
    requestTimeout,
    // Overshoot of a timeout is at most one interval: 1 s, finer for sub-second timeouts (tests).
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 4))),
  };
}

/** Node refuses headersTimeout > requestTimeout at creation; a reload must not set it either. */
function timeouts(settings: ConnectionSettings): { headersTimeout: number; requestTimeout: number } {
  return {
    headersTimeout: Math.min(settings.headersTimeoutMs, settings.requestTimeoutMs),
    requestTimeout: settings.requestTimeoutMs,
  };
}

/** The answer written to a connection over the cap, before it is closed: built once. */
const REFUSED = rawErrorResponse(
  new SluiceError(
    'too_many_connections',
    'Too many open connections from this client address (server.maxConnectionsPerAddress); reuse connections or retry later.',
    { retryAfterSeconds: 1 },
  ),
);

/**
 * Counts open connections per client (socket) address and refuses those over the cap as soon as
 * they are accepted, before the HTTP parser sees a byte. Connections from trusted proxies are not
 * capped: they carry many clients, told apart only by X-Forwarded-For, per request.
 */
export class ConnectionGuard {
  readonly #open = new Map<string, number>();
  readonly #metrics: Pick<Metrics, 'connectionsRefused'>;
  readonly #log: Logger;
  // One line per 10 s at most, however many sockets are refused; it says how many were not logged.
  readonly #logThrottle = new LogThrottle(1, 10_000);
  #max = 0;
  #trusted: BlockList | undefined;
  #server: Server | undefined;
  #settings: ConnectionSettings | undefined;

  constructor(
    settings: ConnectionSettings,
    deps: { metrics: Pick<Metrics, 'connectionsRefused'>; log: Logger },
  ) {
    this.#metrics = deps.metrics;
    this.#log = deps.log;
    this.configure(settings);
  }

  /** Starts counting; before `listen`, so no connection is missed. */
  attach(server: Server): void {
    this.#server = server;
    this.#apply();
    // Ahead of the HTTP server's own listener: a refused socket never gets a parser.
    server.prependListener('connection', (socket: Socket) => this.#onConnection(socket));
  }

  configure(settings: ConnectionSettings): void {
    const trusted = compileTrustedProxies(settings.trustedProxies);
    this.#max = settings.maxConnectionsPerAddress;
    this.#trusted = trusted;
    this.#settings = settings;
    this.#apply();
  }

  /** Connections open now from `address` (counted ones only). */
  openFrom(address: string): number {
    return this.#open.get(address) ?? 0;
  }

  #apply(): void {
    const server = this.#server;
    const settings = this.#settings;
    if (server === undefined || settings === undefined) return;
    const { headersTimeout, requestTimeout } = timeouts(settings);
    server.headersTimeout = headersTimeout;
    server.requestTimeout = requestTimeout;
    server.keepAliveTimeout = settings.keepAliveTimeoutMs;
  }

  #onConnection(socket: Socket): void {
    const peer = socket.remoteAddress;
    if (peer === undefined) return;
    const address = normalizeAddress(peer);
    if (this.#trusted !== undefined && isTrusted(this.#trusted, address)) return;
    const open = this.#open.get(address) ?? 0;
    if (this.#max > 0 && open >= this.#max) {
      // A fresh socket's first write goes straight to the kernel, so the answer leaves before the
      // close; a client that already sent its request may see a reset instead.
      socket.write(REFUSED);
      socket.destroy();
      this.#refused(address, open);
      return;
    }
    this.#open.set(address, open + 1);
    socket.once('close', () => {
      const left = (this.#open.get(address) ?? 1) - 1;
      if (left <= 0) this.#open.delete(address);
      else this.#open.set(address, left);
    });
  }

  #refused(address: string, open: number): void {
    this.#metrics.connectionsRefused.inc();
    const suppressed = this.#logThrottle.take(performance.now());
    if (suppressed === undefined) return;
    this.#log.warn(
      { address, open, max: this.#max, refusedSinceLastLine: suppressed + 1 },
      'connection refused: too many open connections from this address (server.maxConnectionsPerAddress)',
    );
  }
}
