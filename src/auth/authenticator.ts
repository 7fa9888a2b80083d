/**
 * Authentication of a request: the client address, the per-address failure allowance, the key
 * lookup and the loopback-only rule, in one place. It sees header values and the socket's
 * address, not the HTTP framework. Every failure is counted and costs the address a token;
 * an address that used up its allowance has its credentials refused unchecked (429).
 */

import type { BlockList } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { SluiceError } from '../errors/sluice-error.ts';
import type { Runtime, Tenant } from '../runtime.ts';
import { LogThrottle } from '../telemetry/log-throttle.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { clientAddress, compileTrustedProxies, isLoopbackClient } from './client-address.ts';
import { AuthFailureLimiter } from './failure-limiter.ts';
import { bearerToken, hashKey } from './keys.ts';

/** What a request presents: the Authorization header, the socket's address, X-Forwarded-For. */
export interface Credentials {
  readonly authorization: string | undefined;
  readonly socketAddress: string | undefined;
  readonly forwardedFor: string | string[] | undefined;
}

type Kind = 'tenant' | 'admin';

export interface AuthenticatorDeps {
  readonly metrics: Pick<Metrics, 'authFailures'>;
  readonly log: Logger;
  /** Monotonic ms; defaults to performance.now(). */
  readonly now?: () => number;
}

export class Authenticator {
  readonly #failures: AuthFailureLimiter;
  readonly #metrics: AuthenticatorDeps['metrics'];
  readonly #log: Logger;
  readonly #now: () => number;
  // Blocking events an attacker can cause at will: a few lines, then a count.
  readonly #logThrottle = new LogThrottle(10, 60_000);
  #trusted: BlockList | undefined;

  constructor(server: Config['server'], deps: AuthenticatorDeps) {
    this.#metrics = deps.metrics;
    this.#log = deps.log;
    this.#now = deps.now ?? (() => performance.now());
    this.#failures = new AuthFailureLimiter(server.authFailures);
    this.#trusted = compileTrustedProxies(server.trustedProxies);
  }

  /** Follows a reload; throws (before changing anything) on an entry BlockList refuses. */
  configure(server: Config['server']): void {
    const trusted = compileTrustedProxies(server.trustedProxies);
    this.#failures.configure(server.authFailures);
    this.#trusted = trusted;
  }

  clientAddress(credentials: Credentials): string {
    return clientAddress(credentials.socketAddress, credentials.forwardedFor, this.#trusted);
  }

  /** The tenant whose key the request presents, or the error to answer with. */
  tenant(runtime: Runtime, credentials: Credentials): Tenant | SluiceError {
    const key = bearerToken(credentials.authorization);
    const address = this.clientAddress(credentials);
    if (key === undefined) {
      this.#fail(address, 'tenant');
      return new SluiceError(
        'missing_api_key',
        'Missing API key: send Authorization: Bearer <your Sluice key>.',
      );
    }
    const blocked = this.#blocked(address);
    if (blocked !== undefined) return blocked;
    const tenant = runtime.tenants.lookup(key);
    // A loopback-only key from elsewhere is answered like a wrong key: it tells nothing.
    if (tenant === undefined || (tenant.loopbackOnly && !isLoopbackClient(credentials.socketAddress))) {
      this.#fail(address, 'tenant');
      return new SluiceError('invalid_api_key', 'Incorrect API key provided.');
    }
    return tenant;
  }

  /** Undefined when the request presents an admin key; admin endpoints without keys do not exist. */
  admin(runtime: Runtime, credentials: Credentials): SluiceError | undefined {
    if (runtime.adminKeys.size === 0) return new SluiceError('not_found', 'No such endpoint.');
    const key = bearerToken(credentials.authorization);
    const address = this.clientAddress(credentials);
    if (key === undefined) {
      this.#fail(address, 'admin');
      return new SluiceError('missing_api_key', 'Missing admin key: send Authorization: Bearer <admin key>.');
    }
    const blocked = this.#blocked(address);
    if (blocked !== undefined) return blocked;
    if (
      !runtime.adminKeys.has(hashKey(key)) ||
      (runtime.adminLoopbackOnly && !isLoopbackClient(credentials.socketAddress))
    ) {
      this.#fail(address, 'admin');
      return new SluiceError('invalid_api_key', 'Incorrect admin key provided.');
    }
    return undefined;
  }

  #blocked(address: string): SluiceError | undefined {
    const waitMs = this.#failures.blockedForMs(address, this.#now());
    if (waitMs === 0) return undefined;
    return new SluiceError(
      'too_many_auth_failures',
      'Too many failed authentications from this address; retry later.',
      { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) },
    );
  }

  #fail(address: string, kind: Kind): void {
    this.#metrics.authFailures.inc({ kind });
    const now = this.#now();
    if (!this.#failures.recordFailure(address, now)) return;
    const suppressed = this.#logThrottle.take(now);
    if (suppressed === undefined) return;
    this.#log.warn(
      {
        address,
        kind,
        retryAfterMs: this.#failures.blockedForMs(address, now),
        suppressed: suppressed || undefined,
      },
      'authentication failures: address blocked until its allowance refills (server.authFailures)',
    );
  }
}
