/**
 * Streams an SSE body from the provider to the client chunk by chunk. Backpressure is end to end:
 * the client socket's buffer pauses the Readable that wraps this generator, which stops reading
 * the undici body, which stops reading the provider's socket. A failure after bytes reached the
 * client ends the stream with one well-formed SSE error event, never a silent cut.
 */
import type { Readable } from 'node:stream';
import { renderSseError } from '../errors/render.ts';
import { SluiceError } from '../errors/sluice-error.ts';
import { classifyUpstreamError } from './classify.ts';
import type { SseTap } from './sse-tap.ts';

export interface RelayHooks {
  /** Called once when the relay ends, with the error that cut it short, if any. */
  onEnd(error: SluiceError | undefined): void;
}

/**
 * Reads the stream until the first token under the first-token timeout, holding what came before
 * it (a role-only opening chunk, say). Until this resolves nothing has reached the client, so a
 * failure here is still an ordinary error response (and, later, a retry).
 */
export async function awaitFirstToken(
  chunks: AsyncIterator<Buffer>,
  tap: SseTap,
  deploymentId: string,
  signal: AbortSignal,
): Promise<Buffer[]> {
  const held: Buffer[] = [];
  try {
    while (!tap.firstTokenSeen) {
      const next = await chunks.next();
      if (next.done) {
        const rest = tap.end();
        if (rest !== undefined) held.push(rest);
        break;
      }
      const out = tap.push(next.value);
      if (out !== undefined) held.push(out);
    }
  } catch (err) {
    throw classifyUpstreamError(err, deploymentId, signal);
  }
  if (held.length === 0) {
    throw new SluiceError(
      'upstream_bad_response',
      `The provider ended the stream without sending anything (deployment ${deploymentId})`,
    );
  }
  return held;
}

export interface RelaySource {
  readonly body: Readable;
  readonly chunks: AsyncIterator<Buffer>;
  readonly held: Buffer[];
  readonly tap: SseTap;
  readonly signal: AbortSignal;
}

/**
 * Relays the held opening bytes, then the rest of the stream as it arrives. The chunk-gap clock
 * runs only while waiting on the provider: time spent waiting for a slow client to drain is the
 * client's backpressure, not a provider stall.
 */
export async function* relaySse(
  source: RelaySource,
  deploymentId: string,
  chunkGapTimeoutMs: number,
  onChunkGap: () => void,
  hooks: RelayHooks,
): AsyncGenerator<Buffer | string> {
  const { body, chunks, held, tap, signal } = source;
  let error: SluiceError | undefined;
  let waiting = false;
  const gapTimer = setTimeout(() => {
    if (waiting) onChunkGap();
  }, chunkGapTimeoutMs);
  try {
    yield held.length === 1 ? held[0]! : Buffer.concat(held);
    for (;;) {
      waiting = true;
      gapTimer.refresh();
      const next = await chunks.next();
      waiting = false;
      if (next.done) break;
      const out = tap.push(next.value);
      if (out !== undefined) yield out;
    }
    const rest = tap.end();
    if (rest !== undefined) yield rest;
  } catch (err) {
    error = classifyUpstreamError(err, deploymentId, signal, true);
    if (error.code !== 'client_closed_request') {
      const rest = tap.end();
      if (rest !== undefined) yield rest;
      yield renderSseError(error);
    }
  } finally {
    clearTimeout(gapTimer);
    if (!body.destroyed) body.destroy();
    hooks.onEnd(error);
  }
}
