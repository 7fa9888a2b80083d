import { ERROR_CATALOG, type ErrorCode } from './catalog.ts';

/** What an upstream provider said, kept so it can be passed through in OpenAI shape. */
export interface ProviderErrorBody {
  message: string;
  type: string | null;
  param: string | null;
  code: string | null;
}

export interface SluiceErrorOptions {
  param?: string | null;
  /** HTTP status to answer with when it differs from the catalog's (provider pass-through). */
  status?: number;
  /** The provider's own error, rendered instead of ours when present. */
  provider?: ProviderErrorBody;
  retryAfterSeconds?: number;
  /** OpenAI error type when it differs from the catalog's (a 429 on tokens says `tokens`). */
  type?: string;
  cause?: unknown;
}

/**
 * The one error class of the gateway. Its `code` comes from the catalog, which fixes the HTTP
 * status and OpenAI `type`; everything that fails a request ends up as one of these.
 */
export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly provider: ProviderErrorBody | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options: SluiceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SluiceError';
    const entry = ERROR_CATALOG[code];
    this.code = code;
    this.status = options.status ?? entry.status;
    this.type = options.type ?? entry.type;
    this.param = options.param ?? null;
    this.provider = options.provider;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isSluiceError(err: unknown): err is SluiceError {
  return err instanceof SluiceError;
}
