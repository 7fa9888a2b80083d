/**
 * Streams an SSE body from the provider to the client chunk by chunk. Backpressure is end to end:
 * the client socket's buffer pauses the Readable that wraps this generator, which stops reading
 * the undici body, which stops reading the provider's socket. A failure after bytes reached the
 * client ends the stream with one well-formed SSE error event, never a silent cut.
 */
import type { Readable } from 'node:stream';
import { renderSseError } from '../errors/render.ts';
import type { SluiceError } from '../errors/sluice-error.ts';
import { classifyUpstreamError } from './classify.ts';
import type { SseTap } from './sse-tap.ts';

export interface RelayHooks {
  onFirstChunk(): void;
  /** Called once when the relay ends, with the error that cut it short, if any. */
  onEnd(error: SluiceError | undefined): void;
}

export async function* relaySse(
  body: Readable,
  tap: SseTap,
  deploymentId: string,
  signal: AbortSignal,
  hooks: RelayHooks,
): AsyncGenerator<Buffer | string> {
  let first = true;
  let error: SluiceError | undefined;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      const out = tap.push(chunk);
      if (out === undefined) continue;
      if (first) {
        first = false;
        hooks.onFirstChunk();
      }
      yield out;
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
    if (!body.destroyed) body.destroy();
    hooks.onEnd(error);
  }
}
