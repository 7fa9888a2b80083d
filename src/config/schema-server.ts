/**
 * The `server` section of the config: the listener, request bounds, client timeouts, connections
 * per address, trusted proxies and failed-authentication limits (docs/config.md#server).
 */
import { Type } from '@sinclair/typebox';
import { ADDRESS_OR_CIDR_PATTERN } from './address-pattern.ts';
import { DEFAULTS } from './defaults.ts';
import { closed } from './schema-kit.ts';

export const ServerSchema = closed({
  host: Type.String({ minLength: 1, default: DEFAULTS.server.host }),
  port: Type.Integer({ minimum: 0, maximum: 65_535, default: DEFAULTS.server.port }),
  bodyLimitBytes: Type.Integer({
    minimum: 1024,
    maximum: 256 * 1024 * 1024,
    default: DEFAULTS.server.bodyLimitBytes,
  }),
  metricsPort: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 65_535,
      description:
        'Serve /metrics on this port (same host) instead of the API port; 0 picks a free one. Takes effect on restart.',
    }),
  ),
  drainTimeoutMs: Type.Integer({
    minimum: 0,
    maximum: 3_600_000,
    default: DEFAULTS.server.drainTimeoutMs,
  }),
  maxResponseBytes: Type.Integer({
    minimum: 1024,
    maximum: 1024 * 1024 * 1024,
    default: DEFAULTS.server.maxResponseBytes,
  }),
  maxJsonDepth: Type.Integer({
    minimum: 8,
    maximum: 10_000,
    default: DEFAULTS.server.maxJsonDepth,
    description:
      'Deepest nesting of arrays and objects accepted in a request body; deeper bodies get 400 invalid_request. Takes effect on restart.',
  }),
  headersTimeoutMs: Type.Integer({
    minimum: 100,
    maximum: 600_000,
    default: DEFAULTS.server.headersTimeoutMs,
    description:
      "From a connection's (or keep-alive request's) first byte until its headers are in; then 408 request_timeout and the connection is closed. At most requestTimeoutMs.",
  }),
  requestTimeoutMs: Type.Integer({
    minimum: 100,
    maximum: 3_600_000,
    default: DEFAULTS.server.requestTimeoutMs,
    description:
      'From the same start until the whole request, body included, is in; then 408 request_timeout and the connection is closed. Never applies to a request already received (waiting on its provider or streaming).',
  }),
  keepAliveTimeoutMs: Type.Integer({
    minimum: 100,
    maximum: 3_600_000,
    default: DEFAULTS.server.keepAliveTimeoutMs,
    description: 'How long an idle keep-alive connection stays open between requests.',
  }),
  maxConnectionsPerAddress: Type.Integer({
    minimum: 0,
    maximum: 10_000_000,
    default: DEFAULTS.server.maxConnectionsPerAddress,
    description:
      'Open connections one client address may hold; more are refused at once (503 too_many_connections). 0 = no cap. Trusted proxies are not capped.',
  }),
  trustedProxies: Type.Array(Type.String({ pattern: ADDRESS_OR_CIDR_PATTERN }), {
    maxItems: 1000,
    default: DEFAULTS.server.trustedProxies,
    description:
      'Addresses or CIDRs of proxies in front of Sluice: for connections from them, the client address is the right-most X-Forwarded-For entry that is not a trusted proxy. Empty: X-Forwarded-For is ignored.',
  }),
  authFailures: Type.Object(
    {
      burst: Type.Integer({
        minimum: 0,
        maximum: 1_000_000,
        default: DEFAULTS.server.authFailures.burst,
        description: 'Failed authentications one client address may make in a row; 0 turns the limit off.',
      }),
      perMinute: Type.Integer({
        minimum: 1,
        maximum: 1_000_000,
        default: DEFAULTS.server.authFailures.perMinute,
        description: 'How fast that allowance refills.',
      }),
      maxAddresses: Type.Integer({
        minimum: 1,
        maximum: 10_000_000,
        default: DEFAULTS.server.authFailures.maxAddresses,
        description: 'Addresses tracked at once (least recently failed forgotten first): bounds the memory.',
      }),
    },
    {
      additionalProperties: false,
      default: DEFAULTS.server.authFailures,
      description:
        'Failed authentications per client address (in memory, per instance); an address that used them up gets 429 too_many_auth_failures for any credentials until its bucket refills.',
    },
  ),
});
