/**
 * One upstream call through the pooled dispatcher, under the timeout ladder. Returns the response
 * once its status is known to be a success; a provider error is read (bounded) and thrown as a
 * SluiceError in OpenAI shape.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Timeouts } from '../config/schema.ts';
import { SluiceError } from '../errors/sluice-error.ts';
import type { UpstreamRequest } from '../providers/openai.ts';
import { classifyUpstreamError, providerErrorFromResponse } from './classify.ts';

/** Provider error bodies are small; anything past this is cut before parsing. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: Dispatcher.ResponseData['headers'];
  readonly body: Dispatcher.ResponseData['body'];
}

export async function callUpstream(
  dispatcher: Dispatcher,
  req: UpstreamRequest,
  timeouts: Timeouts,
  deploymentId: string,
  signal: AbortSignal,
): Promise<UpstreamResponse> {
  let res: Dispatcher.ResponseData;
  try {
    res = await untilAborted(
      dispatcher.request({
        origin: req.origin,
        path: req.path,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal,
        headersTimeout: timeouts.firstTokenTimeoutMs,
        bodyTimeout: timeouts.chunkGapTimeoutMs,
      }),
      signal,
    );
  } catch (err) {
    throw classifyUpstreamError(err, deploymentId, signal);
  }
  if (res.statusCode >= 400) {
    let text = '';
    try {
      text = (await readBounded(res.body, MAX_ERROR_BODY_BYTES, deploymentId, signal, true)).toString('utf8');
    } catch (err) {
      if (signal.aborted) throw classifyUpstreamError(err, deploymentId, signal);
    }
    throw providerErrorFromResponse(
      res.statusCode,
      text,
      headerText(res.headers['retry-after']),
      headerText(res.headers['retry-after-ms']),
    );
  }
  return res;
}

/**
 * undici takes note of an abort while the request waits for a connection, but acts on it only once
 * the connection exists (it then drops the request unsent): a hanging TCP connect held every
 * deadline (total, client header, client gone) until the pool's connect timeout. This settles the
 * call at the abort, whatever the phase; a response that still arrives later is discarded.
 */
function untilAborted(
  pending: Promise<Dispatcher.ResponseData>,
  signal: AbortSignal,
): Promise<Dispatcher.ResponseData> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      settled = true;
      reject(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (res) => {
        if (settled) {
          discardBody(res.body);
          return;
        }
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve(res);
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** A response header's value when it came once; a repeated header is not trusted. */
export function headerText(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Destroys a response body nobody reads any more. undici's body emits an 'error'
 * (RequestAbortedError) when destroyed before its end; with no listener left that error would be
 * thrown as an uncaught exception and take the whole process down.
 */
export function discardBody(body: Readable): void {
  if (body.destroyed) return;
  if (body.listenerCount('error') === 0) body.on('error', ignore);
  body.destroy();
}

function ignore(): void {}

/**
 * Reads a whole body into memory, refusing to hold more than `limit` bytes. With `truncate`, the
 * first `limit` bytes are kept and the rest is discarded instead of failing. Event-based rather
 * than `for await`, which costs an async iterator and a promise per chunk.
 */
export function readBounded(
  body: Readable,
  limit: number,
  deploymentId: string,
  signal: AbortSignal,
  truncate = false,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      body.removeListener('data', onData);
      body.removeListener('end', onEnd);
      body.removeListener('error', onError);
    };
    const finish = () => {
      done();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, Math.min(size, limit)));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      if (truncate) {
        chunks.push(chunk.subarray(0, chunk.length - (size - limit)));
        finish();
        discardBody(body);
        return;
      }
      done();
      discardBody(body);
      reject(
        new SluiceError(
          'upstream_bad_response',
          `The provider's response is larger than this gateway holds (${limit} bytes; deployment ${deploymentId})`,
        ),
      );
    };
    const onEnd = finish;
    const onError = (err: unknown) => {
      done();
      reject(classifyUpstreamError(err, deploymentId, signal));
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
  });
}
