/**
 * Maps every failure, ours, the framework's and the provider's, to one SluiceError and renders it
 * in OpenAI's shape. Stack traces go to the log, never to the client.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
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
