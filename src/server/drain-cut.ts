/**
 * What the drain does when its timeout is reached: never a silent cut. Each inference request
 * registers the AbortController of its upstream work (queue wait, attempts, the relayed stream)
 * for as long as it runs. At the drain timeout, shutdown aborts them all with one reason, and each
 * ends the way any upstream failure ends, saying why: a stream already relaying gets one SSE error
 * event (`shutting_down`) and ends properly; a request whose response has not started is answered
 * 503 `shutting_down`; the upstream call is aborted either way. A request that registers after
 * the cut (it was still in the limiter) is aborted at once. Then the connections left are closed.
 */
import { SluiceError } from '../errors/sluice-error.ts';
import { UpstreamAbort } from '../upstream/classify.ts';

/**
 * How long the requests ended by the cut have to reach their clients (an SSE error event or a
 * 503 is a few hundred bytes) before the connections left are closed; a client that reads is
 * done in milliseconds, one that does not read would never be.
 */
export const CUT_GRACE_MS = 500;

/** The abort reason of the cut: one object, recognised by identity. */
const CUT = new UpstreamAbort('shutting_down');

export class DrainCut {
  readonly #open = new Set<AbortController>();
  #cut = false;

  /** Registers a request's controller until delete(); a Set insert, nothing allocated. */
  add(controller: AbortController): void {
    if (this.#cut) controller.abort(CUT);
    else this.#open.add(controller);
  }

  delete(controller: AbortController): void {
    this.#open.delete(controller);
  }

  /** Requests registered now. */
  get size(): number {
    return this.#open.size;
  }

  /** Aborts every registered request, and any registered later; returns how many were open. */
  cutAll(): number {
    this.#cut = true;
    const open = this.#open.size;
    for (const controller of this.#open) controller.abort(CUT);
    this.#open.clear();
    return open;
  }
}

/**
 * The error a request ends with when `err` came out of a wait the cut aborted. Upstream failures
 * already say `shutting_down` (the abort reason is classified); the admission queue reports any
 * abort that is not the client's as its own timeout, but the client is owed the real reason.
 */
export function cutError(signal: AbortSignal, err: unknown): unknown {
  if (signal.reason !== CUT || (err instanceof SluiceError && err.code === 'shutting_down')) return err;
  return new SluiceError(
    'shutting_down',
    'This gateway instance is shutting down and ended the request at its drain timeout; retry it.',
  );
}
