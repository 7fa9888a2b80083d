/**
 * Watches an SSE byte stream on its way to the client. It forwards whole events only (so an error
 * event appended after a failure can never land inside a half-written one), notices the first
 * token, reads the usage chunk, and can drop the usage-only chunk that Sluice asked the provider
 * for when the client did not ask for it itself.
 *
 * Fast path: a chunk that ends on an event boundary and mentions no usage is forwarded as the same
 * Buffer, with no copy and no decoding.
 */
import { extractUsage, type Usage } from './usage.ts';

const BOUNDARY = '\n\n';
/** An event that carries generated output: text, reasoning, a refusal, a tool call, or the finish. */
const FIRST_TOKEN =
  /"(?:content|text|reasoning_content|refusal)"\s*:\s*"[^"]|"(?:tool_calls|function_call)"\s*:\s*[[{]|"finish_reason"\s*:\s*"|\[DONE\]/;
/** An event larger than this is forwarded unsplit rather than buffered without bound. */
const MAX_PENDING_BYTES = 1024 * 1024;

export class SseTap {
  usage: Usage | undefined;
  events = 0;
  /** The provider has sent its first token (a role-only opening chunk does not count). */
  firstTokenSeen = false;
  sawDone = false;
  readonly #dropUsageChunk: boolean;
  #pending: Buffer | undefined;

  constructor(dropUsageChunk: boolean) {
    this.#dropUsageChunk = dropUsageChunk;
  }

  /** Bytes to forward now (possibly none) for one chunk read from the provider. */
  push(chunk: Buffer): Buffer | undefined {
    const data = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    const end = data.lastIndexOf(BOUNDARY);
    if (end < 0) {
      if (data.length > MAX_PENDING_BYTES) {
        this.#pending = undefined;
        return data;
      }
      this.#pending = data;
      return undefined;
    }
    const cut = end + BOUNDARY.length;
    this.#pending = cut < data.length ? data.subarray(cut) : undefined;
    const complete = cut < data.length ? data.subarray(0, cut) : data;
    return this.#inspect(complete);
  }

  /** Whatever is left when the provider ends the stream. */
  end(): Buffer | undefined {
    const rest = this.#pending;
    this.#pending = undefined;
    return rest && this.#inspect(rest);
  }

  #inspect(events: Buffer): Buffer | undefined {
    this.events += countBoundaries(events);
    if (!this.firstTokenSeen && FIRST_TOKEN.test(events.toString('utf8'))) this.firstTokenSeen = true;
    // [DONE] is the last event: look at the tail only.
    if (!this.sawDone && events.includes('[DONE]', Math.max(0, events.length - 16))) this.sawDone = true;
    // With include_usage every chunk carries "usage":null; only a usage object needs the slow path.
    if (!events.includes('"usage":{') && !events.includes('"usage": {')) return events;
    const text = events.toString('utf8');
    const parts = text.split(BOUNDARY);
    let dropped = false;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (!part.includes('"usage":{') && !part.includes('"usage": {')) continue;
      const usage = extractUsage(part);
      if (!usage) continue;
      this.usage = usage;
      if (this.#dropUsageChunk && /"choices"\s*:\s*\[\s*\]/.test(part)) {
        parts.splice(i--, 1);
        dropped = true;
      }
    }
    if (!dropped) return events;
    const out = parts.join(BOUNDARY);
    return out.length > 0 ? Buffer.from(out, 'utf8') : undefined;
  }
}

function countBoundaries(buf: Buffer): number {
  let n = 0;
  let at = buf.indexOf(BOUNDARY);
  while (at >= 0) {
    n++;
    at = buf.indexOf(BOUNDARY, at + 2);
  }
  return n;
}
