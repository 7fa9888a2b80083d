/**
 * Maps every failure, ours, the framework's and the provider's, to one SluiceError and renders it
 * in OpenAI's shape. Stack traces go to the log, never to the client.
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorCode } from '../errors/catalog.ts';
import { clientShouldRetry } from '../errors/client-retry.ts';
import { renderError } from '../errors/render.ts';
import { SluiceError } from '../errors/sluice-error.ts';

export function toSluiceError(err: unknown): SluiceError {
  if (err instanceof SluiceError) return err;
  const e = err as Partial<FastifyError> & { validation?: Array<Record<string, unknown>> };
  if (Array.isArray(e.validation) && e.validation.length > 0) return fromValidation(e.validation[0]!, e);
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new SluiceError('request_too_large', 'The request body is larger than this gateway accepts.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new SluiceError('unsupported_media_type', 'Send the body as application/json.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new SluiceError('invalid_json', 'The request body is empty; send a JSON object.');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new SluiceError('invalid_json', 'The request body is not valid JSON.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new SluiceError('invalid_request', 'The Content-Length header does not match the body.');
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return new SluiceError('invalid_request', 'The request URL is malformed.');
  }
  if (err instanceof SyntaxError && e.statusCode === 400) {
    return new SluiceError('invalid_json', 'The request body is not valid JSON.');
  }
  const status = e.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 404) return new SluiceError('not_found', 'No such endpoint.');
    return new SluiceError('invalid_request', safeMessage(e.message), { status });
  }
  return new SluiceError(
    'internal_error',
    'Internal error in the gateway; see the gateway log for this request id.',
    {
      cause: err,
    },
  );
}

function fromValidation(v: Record<string, unknown>, e: Partial<FastifyError>): SluiceError {
  const params = (v.params ?? {}) as Record<string, unknown>;
  let field = String(v.instancePath ?? '')
    .split('/')
    .filter(Boolean)
    .map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`))
    .join('');
  if (typeof params.missingProperty === 'string')
    field = field ? `${field}.${params.missingProperty}` : params.missingProperty;
  const where =
    e.validationContext === 'body' || e.validationContext === undefined ? '' : `${e.validationContext} `;
  const message = field
    ? `Invalid ${where}field '${field}': ${v.message ?? 'is invalid'}.`
    : `Invalid ${where}request: ${v.message ?? 'is invalid'}.`;
  return new SluiceError('invalid_request', message, { param: field || null });
}

/** Framework messages are short and fixed; cap them anyway so nothing large or odd is reflected. */
function safeMessage(message: string | undefined): string {
  return (message ?? 'Bad request').slice(0, 200);
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const error = toSluiceError(err);
  if (error.code === 'internal_error') request.log.error({ err, requestId: request.id }, 'internal error');
  if (request.sluice) request.sluice.errorCode = error.code;
  if (error.retryAfterSeconds !== undefined)
    reply.header('retry-after', String(Math.ceil(error.retryAfterSeconds)));
  reply.header('x-should-retry', clientShouldRetry(error) ? 'true' : 'false');
  reply.header('x-request-id', request.id);
  return reply.code(error.status).type('application/json; charset=utf-8').send(renderError(error));
}

/** A whole HTTP/1.1 error response that closes the connection, for writing straight to a socket. */
export function rawErrorResponse(error: SluiceError): Buffer {
  const body = JSON.stringify(renderError(error));
  const retryAfter =
    error.retryAfterSeconds === undefined ? '' : `retry-after: ${Math.ceil(error.retryAfterSeconds)}\r\n`;
  const head =
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n${retryAfter}` +
    `x-should-retry: ${clientShouldRetry(error)}\r\nconnection: close\r\n\r\n`;
  return Buffer.from(head + body);
}

interface ClientErrorAnswer {
  readonly code: ErrorCode;
  readonly status: number;
  readonly response: Buffer;
}

function answer(code: ErrorCode, message: string): ClientErrorAnswer {
  const error = new SluiceError(code, message);
  return { code, status: error.status, response: rawErrorResponse(error) };
}

/**
 * The errors Node's HTTP parser raises before (or instead of) a request reaching fastify, with the
 * raw bytes of their answer, built once: a slow or malformed client costs no allocation here.
 */
const CLIENT_ERRORS = new Map<string, ClientErrorAnswer>([
  [
    'ERR_HTTP_REQUEST_TIMEOUT',
    answer(
      'request_timeout',
      'The request did not arrive in time (server.headersTimeoutMs for the headers, server.requestTimeoutMs for the whole request); the connection is closed.',
    ),
  ],
  [
    'HPE_HEADER_OVERFLOW',
    answer('request_header_too_large', 'The request headers are larger than this gateway accepts.'),
  ],
  [
    'HPE_CHUNK_EXTENSIONS_OVERFLOW',
    answer('request_too_large', 'A chunk extension of the request body is too large.'),
  ],
]);
/** Every other parser error: a malformed request line or header, conflicting framing headers. */
const BAD_REQUEST = answer('invalid_request', 'The request is not valid HTTP/1.1.');

const kClientError = Symbol('sluice.clientError');
type MarkedSocket = Socket & {
  [kClientError]?: ErrorCode;
  _httpMessage?: ServerResponse | null;
  parser?: { incoming?: unknown } | null;
};

/** The code the HTTP layer closed this socket with (a request cut by a timeout), if it did. */
export function clientErrorCode(socket: Socket | null | undefined): ErrorCode | undefined {
  return (socket as MarkedSocket | null | undefined)?.[kClientError];
}

/**
 * fastify's `clientErrorHandler`: Node's parser failed on a connection (timeout, oversized or
 * malformed headers). Answered in OpenAI's shape with `connection: close` when no answer has
 * started on it, then closed. Node's `_httpMessage` (the response in flight) and `parser.incoming`
 * (the request being read) tell whether a response is still possible: a request whose answer went
 * out already (a 401 while its body was still arriving) gets no second one.
 */
export function clientErrorHandler(
  onClientError: (code: ErrorCode) => void,
): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const entry = CLIENT_ERRORS.get(err.code ?? '') ?? BAD_REQUEST;
    const marked = socket as MarkedSocket;
    marked[kClientError] = entry.code;
    onClientError(entry.code);
    const inFlight = marked._httpMessage;
    let answerable: boolean;
    if (inFlight) {
      answerable = !inFlight.headersSent;
      // The access log and metrics of the request being read then say 408, not a client abort.
      if (answerable) inFlight.statusCode = entry.status;
    } else {
      answerable = !marked.parser?.incoming;
    }
    if (answerable && socket.writable) socket.write(entry.response);
    socket.destroy();
  };
}
