/**
 * The token cost of a request, estimated before the call: prompt characters / charsPerToken
 * (rounded up) plus the completion tokens it may use (max_tokens or max_completion_tokens, else
 * the configured default), times `n` choices. The limiter charges this up front and settles with
 * the provider's real usage afterwards, so the estimate only has to be cheap and not too low.
 * It reads string lengths and never serialises the body, so it costs microseconds.
 */
import type { Endpoint } from '../providers/openai.ts';

export interface EstimateSettings {
  readonly charsPerToken: number;
  readonly defaultMaxTokens: number;
}

/** Bounded walk: content beyond this many parts is not counted (the body limit bounds it anyway). */
const MAX_PARTS = 10_000;

export function estimateTokens(
  endpoint: Endpoint,
  body: Readonly<Record<string, unknown>>,
  settings: EstimateSettings,
): number {
  let chars = 0;
  if (endpoint === 'chat.completions') chars = messageChars(body.messages);
  else if (endpoint === 'completions') chars = textChars(body.prompt);
  else chars = textChars(body.input);
  const prompt = Math.ceil(chars / settings.charsPerToken);
  if (endpoint === 'embeddings') return Math.max(1, prompt);
  const max =
    wholeNumber(body.max_completion_tokens) ?? wholeNumber(body.max_tokens) ?? settings.defaultMaxTokens;
  const n = wholeNumber(body.n) ?? 1;
  return Math.max(1, prompt + max * Math.max(1, Math.min(n, 128)));
}

function messageChars(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  let chars = 0;
  const count = Math.min(messages.length, MAX_PARTS);
  for (let i = 0; i < count; i++) {
    const m = messages[i] as Record<string, unknown> | null;
    if (m === null || typeof m !== 'object') continue;
    // Role and framing cost a few tokens per message.
    chars += 16 + textChars(m.content);
    if (typeof m.name === 'string') chars += m.name.length;
    if (Array.isArray(m.tool_calls)) {
      for (const call of m.tool_calls.slice(0, 128) as Array<Record<string, unknown>>) {
        const fn = call?.function as Record<string, unknown> | undefined;
        if (fn && typeof fn.arguments === 'string') chars += fn.arguments.length;
        if (fn && typeof fn.name === 'string') chars += fn.name.length;
      }
    }
  }
  return chars;
}

/** A string, an array of strings, token-id arrays, or content parts with `text`. */
function textChars(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (!Array.isArray(value)) return 0;
  let chars = 0;
  const count = Math.min(value.length, MAX_PARTS);
  for (let i = 0; i < count; i++) {
    const part = value[i];
    if (typeof part === 'string') chars += part.length;
    // A token id (completions/embeddings accept token arrays) is one token: charsPerToken chars.
    else if (typeof part === 'number') chars += 4;
    else if (Array.isArray(part)) chars += part.length * 4;
    else if (part !== null && typeof part === 'object') {
      const text = (part as Record<string, unknown>).text;
      if (typeof text === 'string') chars += text.length;
    }
  }
  return chars;
}

function wholeNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.floor(value) : undefined;
}
