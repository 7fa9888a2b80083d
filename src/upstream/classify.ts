/**
 * The one place where a failed upstream call becomes a SluiceError. Every caller (inference
 * routes, the pass-through proxy) asks this module; nothing else inspects undici error codes.
 */
import { type ProviderErrorBody, SluiceError } from '../errors/sluice-error.ts';

/** Why Sluice itself aborted an upstream call; carried as the AbortSignal's reason. */
export type AbortCause =
  | 'client_closed_request'
  | 'total_timeout'
  | 'first_token_timeout'
  | 'chunk_gap_timeout'
  | 'shutting_down';

export class UpstreamAbort extends Error {
  readonly kind: AbortCause;
  constructor(kind: AbortCause) {
    super(kind);
    this.kind = kind;
  }
}

const MESSAGES: Record<AbortCause, string> = {
  client_closed_request: 'The client closed the request',
  total_timeout: 'The upstream call exceeded its total timeout',
  first_token_timeout: 'The provider sent no first token in time',
  chunk_gap_timeout: 'The provider stream stalled between chunks',
  shutting_down:
    'This gateway instance is shutting down and ended the request at its drain timeout; retry it',
};

/** `midStream`: the failure came after response bytes were relayed, so a dropped socket is an interrupted stream. */
export function classifyUpstreamError(
  err: unknown,
  deploymentId: string,
  signal?: AbortSignal,
  midStream = false,
): SluiceError {
  if (err instanceof SluiceError) return err;
  const reason: unknown = signal?.aborted ? signal.reason : undefined;
  if (reason instanceof UpstreamAbort) {
    return new SluiceError(reason.kind, `${MESSAGES[reason.kind]} (deployment ${deploymentId})`, {
      cause: err,
    });
  }
  const code = (err as { code?: string } | null)?.code;
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new SluiceError(
        'connect_timeout',
        `Connecting to the provider timed out (deployment ${deploymentId})`,
        {
          cause: err,
        },
      );
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new SluiceError(
        'first_token_timeout',
        `The provider sent no response headers in time (deployment ${deploymentId})`,
        { cause: err },
      );
    case 'UND_ERR_BODY_TIMEOUT':
      return new SluiceError(
        'chunk_gap_timeout',
        `The provider went silent mid-response (deployment ${deploymentId})`,
        {
          cause: err,
        },
      );
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
    case 'ECONNRESET':
    case 'EPIPE':
      if (midStream) {
        return new SluiceError(
          'upstream_stream_interrupted',
          `The provider stream was interrupted (deployment ${deploymentId})`,
          {
            cause: err,
          },
        );
      }
      return new SluiceError(
        'upstream_bad_response',
        `The provider closed the connection (deployment ${deploymentId})`,
        {
          cause: err,
        },
      );
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return new SluiceError(
        'upstream_bad_response',
        `The provider's response was cut short (deployment ${deploymentId})`,
        {
          cause: err,
        },
      );
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new SluiceError(
        'upstream_unreachable',
        `The provider is unreachable (deployment ${deploymentId}: ${code})`,
        {
          cause: err,
        },
      );
    default:
      return new SluiceError(
        'upstream_unreachable',
        `The upstream call failed (deployment ${deploymentId})`,
        {
          cause: err,
        },
      );
  }
}

/**
 * A provider's error answer in OpenAI shape. The status is passed through; the body is parsed for
 * OpenAI's `{"error":{...}}` and otherwise summarised (never echoed raw: it may be HTML).
 */
export function providerErrorFromResponse(
  status: number,
  bodyText: string,
  retryAfterHeader: string | undefined,
  retryAfterMsHeader?: string,
): SluiceError {
  let provider: ProviderErrorBody | undefined;
  try {
    const parsed = JSON.parse(bodyText) as { error?: unknown; message?: unknown };
    const e = parsed?.error;
    if (e && typeof e === 'object') {
      const o = e as Record<string, unknown>;
      provider = {
        message: typeof o.message === 'string' ? o.message : `Provider returned HTTP ${status}`,
        type: typeof o.type === 'string' ? o.type : null,
        param: typeof o.param === 'string' ? o.param : null,
        code: typeof o.code === 'string' || typeof o.code === 'number' ? String(o.code) : null,
      };
    } else if (typeof e === 'string' || typeof parsed?.message === 'string') {
      provider = { message: String(e ?? parsed.message), type: null, param: null, code: null };
    }
  } catch {
    // not JSON: fall through to a summary
  }
  if (status === 401 || status === 403) {
    // The caller's Sluice key was fine; the gateway's provider key was not. Passing the 401 on would
    // make SDKs report a bad key to the caller, and the provider's message can echo part of our key.
    return new SluiceError(
      'upstream_auth_failed',
      `The provider refused this gateway's credentials (HTTP ${status}); check the provider's apiKey in the gateway config.`,
    );
  }
  provider ??= { message: `Provider returned HTTP ${status}`, type: null, param: null, code: null };
  const retryAfterMs = parseRetryAfterMs(retryAfterHeader, retryAfterMsHeader);
  return new SluiceError('upstream_error', provider.message, {
    status,
    provider: { ...provider, type: provider.type ?? openAITypeFor(status) },
    retryAfterSeconds: retryAfterMs === undefined ? undefined : retryAfterMs / 1000,
  });
}

function openAITypeFor(status: number): string {
  if (status === 429) return 'rate_limit_error';
  if (status >= 400 && status < 500) return 'invalid_request_error';
  return 'api_error';
}

/** `retry-after-ms` (OpenAI's, more precise) or `Retry-After` (seconds or an HTTP date), in ms. */
export function parseRetryAfterMs(
  seconds: string | undefined,
  ms: string | undefined,
  now = Date.now(),
): number | undefined {
  if (ms !== undefined) {
    const v = Number(ms);
    if (ms.trim() !== '' && Number.isFinite(v) && v >= 0) return v;
  }
  if (seconds === undefined || seconds.trim() === '') return undefined;
  const v = Number(seconds);
  if (Number.isFinite(v)) return v >= 0 ? v * 1000 : undefined;
  const date = Date.parse(seconds);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
