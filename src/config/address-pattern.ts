/**
 * A JSON-Schema pattern for an IP address or CIDR block (`10.0.0.7`, `10.0.0.0/8`, `::1`,
 * `fd00::/8`, `::ffff:10.0.0.0/104`). The config schema has no `format` support, and a typo in
 * `server.trustedProxies` must be refused when the file is loaded, not when a request arrives.
 * test/unit/client-address.test.ts checks it against node:net's isIP.
 */
const octet = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const ipv4 = `(${octet}\\.){3}${octet}`;
const h = '[0-9A-Fa-f]{1,4}';
// RFC 4291 text forms: eight groups, or fewer around one `::`, the last 32 bits optionally dotted.
const ipv6 = [
  `(${h}:){7}${h}`,
  `(${h}:){1,7}:`,
  `(${h}:){1,6}:${h}`,
  `(${h}:){1,5}(:${h}){1,2}`,
  `(${h}:){1,4}(:${h}){1,3}`,
  `(${h}:){1,3}(:${h}){1,4}`,
  `(${h}:){1,2}(:${h}){1,5}`,
  `${h}:(:${h}){1,6}`,
  `:((:${h}){1,7}|:)`,
  `(${h}:){6}${ipv4}`,
  `::(${h}:){0,5}${ipv4}`,
  `${h}::(${h}:){0,4}${ipv4}`,
  `(${h}:){1}${h}::(${h}:){0,3}${ipv4}`,
  `(${h}:){2}${h}::(${h}:){0,2}${ipv4}`,
  `(${h}:){3}${h}::(${h}:){0,1}${ipv4}`,
  `(${h}:){4}${h}::${ipv4}`,
].join('|');

export const ADDRESS_OR_CIDR_PATTERN = `^((${ipv4})(/(3[0-2]|[12]?[0-9]))?|(${ipv6})(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$`;
