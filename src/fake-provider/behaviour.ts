// Behaviour of the fake provider for one request: pure parsing and validation, no I/O.
//
// A behaviour comes from (highest precedence first):
//   1. request headers `x-fake-<name>: <value>`
//   2. a path segment before `/v1`: `/fake/<name>=<value>,<name>=<value>/v1/...`
//   3. defaults given to startFakeProvider() / the CLI (`--<name> <value>`)
//   4. DEFAULT_BEHAVIOUR

import type { IncomingHttpHeaders } from 'node:http';

export type Behaviour = {
  /** Answer with this status. Non-2xx: OpenAI-shaped error body. 2xx: a normal response with that status. */
  status?: number;
  /** `retry-after` response header, sent verbatim (seconds, may be fractional). */
  retryAfter?: string;
  /** `retry-after-ms` response header, sent verbatim. */
  retryAfterMs?: string;
  /** Wait this long before sending response headers (every endpoint, every status). */
  headersDelayMs: number;
  /** Streaming only: headers go out at once, then wait this long before the first chunk. */
  firstChunkDelayMs: number;
  /** Number of content chunks (completion tokens). */
  chunks: number;
  /** Streaming only: delay between two content chunks. */
  chunkGapMs: number;
  /** Characters of content per chunk; unset: a short word (`tok0 `, `tok1 `, ...). */
  chunkSize?: number;
  /** After this many content chunks stop writing but keep the connection open. */
  stallAfter?: number;
  /** After this many content chunks drop the connection without finishing the response. */
  disconnectAfter?: number;
  /** Report token usage (non-streaming always, streaming when stream_options.include_usage). */
  usage: boolean;
  /** Share of requests (0..1) failed at random with failStatus. */
  failRate: number;
  /** Status used by failRate and failFirst (400..599). */
  failStatus: number;
  /** The first N requests with the same behaviour key (the tag, else the path segment) fail with failStatus, then succeed. */
  failFirst?: number;
  /** `code` in injected error bodies (e.g. context_length_exceeded). */
  errorCode?: string;
  /** No effect but to tell behaviours apart: failFirst counts and stats.byBehaviour are kept per tag. */
  tag?: string;
};

export const DEFAULT_BEHAVIOUR: Readonly<Behaviour> = Object.freeze({
  headersDelayMs: 0,
  firstChunkDelayMs: 0,
  chunks: 5,
  chunkGapMs: 0,
  usage: true,
  failRate: 0,
  failStatus: 503,
});

export type BehaviourError = {
  /** Behaviour name, e.g. `chunks` (or the unknown name as given). */
  name: string;
  source: 'header' | 'path';
  /** What to report as the error's `param`: the header name (`x-fake-chunks`) or `/fake/chunks`. */
  param: string;
  value: string;
  message: string;
};

export type BehaviourResult =
  | { behaviour: Behaviour; error?: undefined }
  | { behaviour?: undefined; error: BehaviourError };

type Value = number | string | boolean;

type Spec = {
  name: string;
  key: keyof Behaviour;
  header: string;
  /** What a valid value looks like, for error messages. */
  expected: string;
  /** Returns undefined when the text is invalid. */
  parse: (text: string) => Value | undefined;
};

const MAX_DELAY_MS = 2_147_483_647; // setTimeout's limit
const INT_RE = /^[0-9]{1,10}$/;
const NUMBER_RE = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/;

function intIn(min: number, max: number): (text: string) => number | undefined {
  return (text) => {
    if (!INT_RE.test(text)) return undefined;
    const n = Number(text);
    return n >= min && n <= max ? n : undefined;
  };
}

function numberIn(min: number, max: number): (text: string) => number | undefined {
  return (text) => {
    if (!NUMBER_RE.test(text)) return undefined;
    const n = Number(text);
    return n >= min && n <= max ? n : undefined;
  };
}

/** Validates like a non-negative number but keeps the text as given (it is echoed in a header). */
function numberText(text: string): string | undefined {
  return NUMBER_RE.test(text) && Number.isFinite(Number(text)) ? text : undefined;
}

function word(text: string): string | undefined {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(text) ? text : undefined;
}

function bool(text: string): boolean | undefined {
  switch (text.toLowerCase()) {
    case 'true':
    case '1':
      return true;
    case 'false':
    case '0':
      return false;
    default:
      return undefined;
  }
}

function spec(name: string, key: keyof Behaviour, expected: string, parse: Spec['parse']): Spec {
  return { name, key, header: `x-fake-${name}`, expected, parse };
}

const SPECS: readonly Spec[] = [
  spec('status', 'status', 'an integer status 100..599', intIn(100, 599)),
  spec('retry-after', 'retryAfter', 'a non-negative number of seconds', numberText),
  spec('retry-after-ms', 'retryAfterMs', 'a non-negative number of milliseconds', numberText),
  spec('headers-delay-ms', 'headersDelayMs', 'milliseconds 0..2147483647', numberIn(0, MAX_DELAY_MS)),
  spec('first-chunk-delay-ms', 'firstChunkDelayMs', 'milliseconds 0..2147483647', numberIn(0, MAX_DELAY_MS)),
  spec('chunks', 'chunks', 'an integer 1..10000000', intIn(1, 10_000_000)),
  spec('chunk-gap-ms', 'chunkGapMs', 'milliseconds 0..2147483647', numberIn(0, MAX_DELAY_MS)),
  spec('chunk-size', 'chunkSize', 'an integer 1..16777216', intIn(1, 16 * 1024 * 1024)),
  spec('stall-after', 'stallAfter', 'an integer >= 0', intIn(0, 10_000_000)),
  spec('disconnect-after', 'disconnectAfter', 'an integer >= 0', intIn(0, 10_000_000)),
  spec('usage', 'usage', 'true or false', bool),
  spec('fail-rate', 'failRate', 'a number 0..1', numberIn(0, 1)),
  spec('fail-status', 'failStatus', 'an integer status 400..599', intIn(400, 599)),
  spec('fail-first', 'failFirst', 'an integer >= 0', intIn(0, 10_000_000)),
  spec('error-code', 'errorCode', 'a word of letters, digits, . _ - (at most 64)', word),
  spec('tag', 'tag', 'a word of letters, digits, . _ - (at most 64)', word),
];

const SPEC_BY_NAME = new Map(SPECS.map((s) => [s.name, s]));
const SPEC_BY_HEADER = new Map(SPECS.map((s) => [s.header, s]));
const SPEC_BY_KEY = new Map(SPECS.map((s) => [s.key as string, s]));

/** Behaviour names as used in headers (`x-fake-<name>`), path segments and CLI flags (`--<name>`). */
export const BEHAVIOUR_NAMES: readonly string[] = SPECS.map((s) => s.name);

const HEADER_PREFIX = 'x-fake-';
const PATH_PREFIX = '/fake/';

/**
 * Splits an optional behaviour segment off a request URL:
 * `/fake/status=503,chunks=2/v1/chat/completions?x=1` -> `{ behaviourText: 'status=503,chunks=2', rest: '/v1/chat/completions?x=1' }`.
 * Without the segment: `{ behaviourText: undefined, rest: url }`. `rest` keeps the query string.
 */
export function splitBehaviourPath(url: string): { behaviourText: string | undefined; rest: string } {
  if (!url.startsWith(PATH_PREFIX)) return { behaviourText: undefined, rest: url };
  let end = url.length;
  const slash = url.indexOf('/', PATH_PREFIX.length);
  const query = url.indexOf('?', PATH_PREFIX.length);
  if (query !== -1) end = query;
  if (slash !== -1 && slash < end) end = slash;
  const rest = url.slice(end);
  return {
    behaviourText: url.slice(PATH_PREFIX.length, end),
    rest: rest.startsWith('/') ? rest : `/${rest}`,
  };
}

function invalid(s: Spec, source: 'header' | 'path', value: string): BehaviourError {
  const where = source === 'header' ? `header ${s.header}` : `${s.name} in the /fake/ path segment`;
  return {
    name: s.name,
    source,
    param: source === 'header' ? s.header : `/fake/${s.name}`,
    value,
    message: `fake provider: invalid value ${JSON.stringify(value)} for ${where}: expected ${s.expected}`,
  };
}

function unknown(name: string, source: 'header' | 'path', value: string): BehaviourError {
  const what =
    source === 'header'
      ? `header ${HEADER_PREFIX}${name}`
      : `${JSON.stringify(name)} in the /fake/ path segment`;
  return {
    name,
    source,
    param: source === 'header' ? HEADER_PREFIX + name : `/fake/${name}`,
    value,
    message: `fake provider: unknown behaviour ${what} (known: ${BEHAVIOUR_NAMES.join(', ')})`,
  };
}

function decode(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function set(b: Behaviour, key: keyof Behaviour, value: Value): void {
  (b as Record<string, Value | undefined>)[key] = value;
}

/**
 * The behaviour for one request. `headers` are Node's lower-cased request headers, `pathBehaviour` the
 * `behaviourText` from splitBehaviourPath(), `defaults` a complete behaviour (see resolveDefaults()).
 * Header beats path beats defaults. Unknown `x-fake-*` headers and path names are errors too.
 * When nothing overrides the defaults, `behaviour` is the `defaults` object itself (do not mutate it).
 */
export function parseBehaviour(
  headers: IncomingHttpHeaders,
  pathBehaviour: string | undefined,
  defaults: Behaviour,
): BehaviourResult {
  let b: Behaviour | undefined;
  if (pathBehaviour) {
    b = { ...defaults };
    for (const part of pathBehaviour.split(',')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const name = decode(eq === -1 ? part : part.slice(0, eq)).trim();
      const value = eq === -1 ? '' : decode(part.slice(eq + 1)).trim();
      const s = SPEC_BY_NAME.get(name);
      if (s === undefined) return { error: unknown(name, 'path', value) };
      const parsed = s.parse(value);
      if (parsed === undefined) return { error: invalid(s, 'path', value) };
      set(b, s.key, parsed);
    }
  }
  for (const header in headers) {
    if (!header.startsWith(HEADER_PREFIX)) continue;
    const raw = headers[header];
    const value = (Array.isArray(raw) ? raw.join(', ') : (raw ?? '')).trim();
    const s = SPEC_BY_HEADER.get(header);
    if (s === undefined) return { error: unknown(header.slice(HEADER_PREFIX.length), 'header', value) };
    const parsed = s.parse(value);
    if (parsed === undefined) return { error: invalid(s, 'header', value) };
    if (b === undefined) b = { ...defaults };
    set(b, s.key, parsed);
  }
  return { behaviour: b ?? defaults };
}

/**
 * A complete, validated behaviour from DEFAULT_BEHAVIOUR plus `partial` (programmatic defaults,
 * camelCase keys). Throws an Error naming the bad key.
 */
export function resolveDefaults(partial: Partial<Behaviour> = {}): Behaviour {
  const b: Behaviour = { ...DEFAULT_BEHAVIOUR };
  for (const [key, value] of Object.entries(partial)) {
    if (value === undefined) continue;
    const s = SPEC_BY_KEY.get(key);
    if (s === undefined) throw new Error(`fake provider: unknown behaviour default ${JSON.stringify(key)}`);
    const parsed = s.parse(String(value));
    if (parsed === undefined) {
      throw new Error(
        `fake provider: invalid default ${key}=${JSON.stringify(value)}: expected ${s.expected}`,
      );
    }
    set(b, s.key, parsed);
  }
  return b;
}

/**
 * Parses behaviour values given by name (`{ chunks: '3', 'chunk-gap-ms': '10' }`, as from CLI flags).
 * Throws an Error naming the bad `--<name>`.
 */
export function parseBehaviourOptions(values: Record<string, string>): Partial<Behaviour> {
  const out: Partial<Behaviour> = {};
  for (const [name, text] of Object.entries(values)) {
    const s = SPEC_BY_NAME.get(name);
    if (s === undefined) throw new Error(`fake provider: unknown behaviour --${name}`);
    const parsed = s.parse(text.trim());
    if (parsed === undefined) {
      throw new Error(
        `fake provider: invalid value ${JSON.stringify(text)} for --${name}: expected ${s.expected}`,
      );
    }
    set(out as Behaviour, s.key, parsed);
  }
  return out;
}
