import { createHash } from 'node:crypto';

/**
 * Sluice keys are stored only as SHA-256 digests; a request's key is hashed once and looked up in
 * a Map. Keys are long random strings, so a plain digest (not a slow KDF) is the right tool: no
 * dictionary to defend against, and hashing stays ~1 µs on the hot path.
 */
export function hashKey(key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('hex')}`;
}

/** The key from `Authorization: Bearer <key>`, or undefined when the header is absent or malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined || header.length < 8 || header.length > 1024) return undefined;
  if (header.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
  const token = header.slice(7).trim();
  return token.length > 0 ? token : undefined;
}

/**
 * Tenant lookup by presented key. Digests of keys seen recently are cached (by the key itself) so
 * the hot path hashes a key once, not once per request; only keys that matched are cached, and
 * the cache is bounded, so random wrong keys cannot grow it.
 */
export class KeyIndex<T> {
  readonly #byDigest: ReadonlyMap<string, T>;
  readonly #seen = new Map<string, T>();
  readonly #maxCached: number;

  constructor(byDigest: ReadonlyMap<string, T>, maxCached = 10_000) {
    this.#byDigest = byDigest;
    this.#maxCached = maxCached;
  }

  lookup(key: string): T | undefined {
    const cached = this.#seen.get(key);
    if (cached !== undefined) return cached;
    const found = this.#byDigest.get(hashKey(key));
    if (found !== undefined) {
      if (this.#seen.size >= this.#maxCached) this.#seen.clear();
      this.#seen.set(key, found);
    }
    return found;
  }
}
