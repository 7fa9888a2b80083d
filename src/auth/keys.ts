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
