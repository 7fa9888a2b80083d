/**
 * Who is the client? The socket's peer, unless that peer is a trusted proxy: then the right-most
 * X-Forwarded-For entry that is not itself a trusted proxy. Entries further left were written by
 * whoever sent the request to the first trusted proxy, so they are believed no further than that.
 * Pure: a BlockList is an in-memory matcher, no I/O.
 */
import { BlockList, isIP } from 'node:net';

/** Hops of X-Forwarded-For examined at most (a chain of trusted proxies longer than this is odd). */
const MAX_HOPS = 32;
const MAPPED_V4 = '::ffff:';

/** The matcher for `server.trustedProxies`, or undefined when there are none (the common case). */
export function compileTrustedProxies(entries: readonly string[]): BlockList | undefined {
  if (entries.length === 0) return undefined;
  // BlockList matches IPv4 rules against IPv4-mapped IPv6 addresses and the other way round.
  const list = new BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const address = slash < 0 ? entry : entry.slice(0, slash);
    const family = isIP(address);
    if (family === 0) throw new Error(`server.trustedProxies: ${entry} is not an IP address or CIDR`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash < 0) list.addAddress(address, type);
    else list.addSubnet(address, Number(entry.slice(slash + 1)), type);
  }
  return list;
}

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`, how a dual-stack socket reports IPv4) as plain IPv4. */
export function normalizeAddress(address: string): string {
  if (address.length > MAPPED_V4.length && address.slice(0, MAPPED_V4.length).toLowerCase() === MAPPED_V4) {
    const v4 = address.slice(MAPPED_V4.length);
    if (isIP(v4) === 4) return v4;
  }
  return address;
}

export function isTrusted(trusted: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && trusted.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The client address of a request: `peer` is the socket's remote address, `forwardedFor` the
 * X-Forwarded-For header (Node joins repeated ones with commas). Without trusted proxies the
 * header is never read, so it cannot be spoofed.
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: BlockList | undefined,
): string {
  let address = peer === undefined ? '' : normalizeAddress(peer);
  if (trusted === undefined || forwardedFor === undefined || !isTrusted(trusted, address)) return address;
  const header = typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(',');
  let end = header.length;
  for (let hop = 0; hop < MAX_HOPS && end > 0; hop++) {
    const comma = header.lastIndexOf(',', end - 1);
    const entry = forwardedEntry(header.slice(comma + 1, end));
    // A malformed entry was not written by a proxy we trust: stop at the last hop we believe.
    if (entry === undefined) return address;
    address = entry;
    if (!isTrusted(trusted, entry)) return entry;
    if (comma < 0) break;
    end = comma;
  }
  return address;
}

/** One X-Forwarded-For entry as an address: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`. */
export function forwardedEntry(raw: string): string | undefined {
  let entry = raw.trim();
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close < 0) return undefined;
    entry = entry.slice(1, close);
  } else {
    const colon = entry.indexOf(':');
    // One colon is IPv4 with a port; IPv6 has at least two.
    if (colon >= 0 && entry.indexOf(':', colon + 1) < 0) entry = entry.slice(0, colon);
  }
  if (isIP(entry) === 0) return undefined;
  return normalizeAddress(entry);
}

/**
 * The loopback addresses demo keys are accepted from: exactly 127.0.0.1 and ::1, not all of
 * 127.0.0.0/8. Local forwarders relay remote clients from other loopback addresses (Istio's
 * sidecar connects from 127.0.0.6), so "anything in 127/8" would let the whole mesh in.
 */
export function isLoopbackClient(socketAddress: string | undefined): boolean {
  if (socketAddress === undefined) return false;
  return socketAddress === '127.0.0.1' || socketAddress === '::1' || socketAddress === '::ffff:127.0.0.1';
}
