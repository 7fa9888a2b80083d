/**
 * The one canonical spelling of a request path, computed before any decision is made on it (is
 * this an inference path? which pass-through rule allows it?) and the only spelling sent upstream.
 * Routing on the raw path let `/v1//chat/completions` or `/v1/chat/%63ompletions` slip past the
 * inference routes to the provider; deciding on the canonical form and forwarding exactly that
 * form leaves no second reading of the path for anyone downstream.
 *
 * What is normalised (harmless spellings a client or an SDK may produce):
 *   - empty segments: `//` collapses, a trailing `/` goes;
 *   - percent-encoding of ordinary characters (`%63` -> `c`).
 * What is refused (no legitimate client needs it, and each is a known way to make two parsers
 * disagree about a path):
 *   - `.` and `..` segments, raw or percent-encoded;
 *   - an encoded `/` or `\` (`%2F`, `%5C`), a raw `\`, and `;` path parameters;
 *   - malformed or double percent-encoding (`%zz`, `%252F`);
 *   - any character outside RFC 3986's path characters (spaces, controls, non-ASCII).
 * Case is kept: OpenAI's ids are case-sensitive. Callers that compare against fixed paths (the
 * inference paths) compare case-insensitively.
 *
 * Pure and synchronous; costs one split and a regex test per segment.
 */

export type NormalisedPath =
  | { readonly ok: true; readonly path: string; readonly segments: readonly string[] }
  | { readonly ok: false; readonly reason: string };

/** Longer paths are refused outright: no API path is near this, and it bounds the work. */
export const MAX_PATH_LENGTH = 2048;

/** RFC 3986 `pchar` without `%` (decoded already) and without `;` (path parameters). */
const SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,=:@]+$/;

/** `raw`: a path without its query string, starting with `/`. */
export function normalisePath(raw: string): NormalisedPath {
  if (raw.length > MAX_PATH_LENGTH) return refuse('the path is too long');
  if (raw.charCodeAt(0) !== 47 /* / */) return refuse('the path does not start with /');
  const segments: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '') continue;
    let segment = part;
    if (segment.includes('%')) {
      try {
        segment = decodeURIComponent(segment);
      } catch {
        return refuse('malformed percent-encoding');
      }
    }
    if (segment === '.' || segment === '..') return refuse('dot segments are not accepted');
    // Catches what decoding revealed too: an encoded / or \, a second layer of %, ; parameters.
    if (!SEGMENT.test(segment)) return refuse('the path has characters that are not accepted');
    segments.push(segment);
  }
  return { ok: true, path: `/${segments.join('/')}`, segments };
}

function refuse(reason: string): NormalisedPath {
  return { ok: false, reason };
}
