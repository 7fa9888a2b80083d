import type { SluiceError } from './sluice-error.ts';

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** OpenAI's error shape. A provider's own error passes through with its own type and code. */
export function renderError(err: SluiceError): OpenAIErrorBody {
  if (err.provider) {
    return {
      error: {
        message: err.provider.message,
        type: err.provider.type ?? err.type,
        param: err.provider.param,
        code: err.provider.code ?? err.code,
      },
    };
  }
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}

/** The last event of a stream that broke after bytes reached the client. */
export function renderSseError(err: SluiceError): string {
  return `data: ${JSON.stringify(renderError(err))}\n\n`;
}
