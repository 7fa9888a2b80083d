/**
 * Streams an SSE body from the provider to the client chunk by chunk, with events, not async
 * iterators: a stream's per-chunk cost matters when hundreds are open. Backpressure is end to
 * end: when the client socket's buffer is full the provider body is paused, which stops reading
 * the provider's socket. A failure after bytes reached the client ends the stream with one
 * well-formed SSE error event, never a silent cut.
 */
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { ERROR_CATALOG } from '../errors/catalog.ts';
import { renderSseError } from '../errors/render.ts';
import { SluiceError } from '../errors/sluice-error.ts';
import { discardBody } from './call.ts';
import { classifyUpstreamError } from './classify.ts';
import type { SseTap } from './sse-tap.ts';

/**
 * Reads the stream until the first token under the first-token timeout, holding what came before
 * it (a role-only opening chunk, say), then pauses the body. Until this resolves nothing has
 * reached the client, so a failure here is still an ordinary error response (and a retry).
 */
export function awaitFirstToken(
  body: Readable,
  tap: SseTap,
  deploymentId: string,
  signal: AbortSignal,
): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const held: Buffer[] = [];
    const cleanup = () => {
      body.removeListener('data', onData);
      body.removeListener('end', onEnd);
      body.removeListener('error', onError);
    };
    const onData = (chunk: Buffer) => {
      const out = tap.push(chunk);
      if (out !== undefined) held.push(out);
      if (tap.firstTokenSeen) {
        body.pause();
        cleanup();
        resolve(held);
      }
    };
    const onEnd = () => {
      cleanup();
      const rest = tap.end();
      if (rest !== undefined) held.push(rest);
      if (held.length > 0) resolve(held);
      else {
        reject(
          new SluiceError(
            'upstream_bad_response',
            `The provider ended the stream without sending anything (deployment ${deploymentId})`,
          ),
        );
      }
    };
    const onError = (err: unknown) => {
      cleanup();
      reject(classifyUpstreamError(err, deploymentId, signal));
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
  });
}

export interface RelaySource {
  readonly body: Readable;
  readonly held: Buffer[];
  readonly tap: SseTap;
  readonly signal: AbortSignal;
}

export interface RelayOptions {
  readonly deploymentId: string;
  readonly chunkGapTimeoutMs: number;
  /** Observes each gap between two provider chunks, in seconds (paused time excluded). */
  readonly gaps?: { observe(seconds: number): void };
  /** The chunk-gap clock ran out: abort the upstream call (its error then ends the relay). */
  onChunkGap(): void;
  /** Called once when the relay ends, with the error that cut it short, if any. */
  onEnd(error: SluiceError | undefined): void;
}

/**
 * Relays the held opening bytes, then the rest of the stream as it arrives, to a response whose
 * head was already written. The chunk-gap clock runs only while waiting on the provider: time
 * spent paused for a slow client is the client's backpressure, not a provider stall.
 */
export function relaySse(source: RelaySource, res: ServerResponse, options: RelayOptions): void {
  const { body, held, tap, signal } = source;
  let ended = false;
  let flowing = true;
  let lastChunkAt = performance.now();
  const gaps = options.gaps;
  const gapTimer = setTimeout(() => {
    if (flowing && !ended) options.onChunkGap();
  }, options.chunkGapTimeoutMs);

  const finish = (error: SluiceError | undefined) => {
    if (ended) return;
    ended = true;
    clearTimeout(gapTimer);
    body.removeListener('data', onData);
    body.removeListener('end', onEnd);
    body.removeListener('error', onError);
    res.removeListener('drain', onDrain);
    discardBody(body);
    options.onEnd(error);
  };
  const write = (out: Buffer | string) => {
    if (!res.write(out)) {
      flowing = false;
      body.pause();
      res.once('drain', onDrain);
    }
  };
  const onDrain = () => {
    flowing = true;
    lastChunkAt = performance.now();
    gapTimer.refresh();
    body.resume();
  };
  const onData = (chunk: Buffer) => {
    gapTimer.refresh();
    if (gaps !== undefined) {
      const now = performance.now();
      gaps.observe((now - lastChunkAt) / 1000);
      lastChunkAt = now;
    }
    const out = tap.push(chunk);
    if (out !== undefined) write(out);
  };
  const onEnd = () => {
    const rest = tap.end();
    if (rest !== undefined) res.write(rest);
    res.end();
    finish(undefined);
  };
  const onError = (err: unknown) => {
    const error = classifyUpstreamError(err, options.deploymentId, signal, true);
    if (error.code === 'client_closed_request') {
      res.destroy();
    } else {
      const rest = tap.end();
      if (rest !== undefined) res.write(rest);
      res.end(renderSseError(error));
    }
    finish(error);
  };

  write(held.length === 1 ? held[0]! : Buffer.concat(held));
  if (body.readableEnded) {
    onEnd();
    return;
  }
  body.on('data', onData);
  body.once('end', onEnd);
  body.once('error', onError);
  if (flowing) body.resume();
}

/**
 * The status a stream cut short is logged and counted with: its SSE error event's. The client
 * got 200 in the head, but the answer it got was that error (`fallback` for a code not ours).
 */
export function sseErrorStatus(code: string | undefined, fallback: number): number {
  return code !== undefined && Object.hasOwn(ERROR_CATALOG, code)
    ? ERROR_CATALOG[code as keyof typeof ERROR_CATALOG].status
    : fallback;
}
