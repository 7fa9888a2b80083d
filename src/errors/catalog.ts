/**
 * Every error code Sluice itself produces. Codes are the contract (clients and dashboards match
 * on them, and they are metric labels, so the set is small and fixed); messages are for humans.
 * `docs/errors.md` lists the same codes, kept in sync by test/unit/errors-doc.test.ts.
 *
 * `type` follows OpenAI's error types so SDKs map them to the usual exception classes.
 */
export const ERROR_CATALOG = {
  invalid_json: { status: 400, type: 'invalid_request_error', doc: 'The body is not valid JSON.' },
  invalid_request: {
    status: 400,
    type: 'invalid_request_error',
    doc: 'A field is missing or has the wrong type; `param` names it.',
  },
  missing_api_key: {
    status: 401,
    type: 'authentication_error',
    doc: 'No `Authorization: Bearer <key>` header.',
  },
  invalid_api_key: { status: 401, type: 'authentication_error', doc: 'The key matches no tenant.' },
  not_found: {
    status: 404,
    type: 'invalid_request_error',
    doc: 'No such endpoint: not a gateway route, and no pass-through route open to this tenant.',
  },
  method_not_allowed: {
    status: 405,
    type: 'invalid_request_error',
    doc: 'The path exists with other methods (an inference path takes POST only); the `allow` header lists them.',
  },
  model_not_found: {
    status: 404,
    type: 'invalid_request_error',
    doc: 'The requested model is not configured.',
  },
  request_timeout: {
    status: 408,
    type: 'invalid_request_error',
    doc: 'The request headers (`server.headersTimeoutMs`) or the whole request, body included (`server.requestTimeoutMs`), did not arrive in time; the connection is closed.',
  },
  request_too_large: {
    status: 413,
    type: 'invalid_request_error',
    doc: 'The body is larger than `server.bodyLimitBytes`.',
  },
  unsupported_media_type: {
    status: 415,
    type: 'invalid_request_error',
    doc: 'The body is not `application/json`.',
  },
  request_header_too_large: {
    status: 431,
    type: 'invalid_request_error',
    doc: 'The request headers are larger than the HTTP parser accepts (16 KiB); the connection is closed.',
  },
  rate_limit_exceeded: {
    status: 429,
    type: 'requests',
    doc: "The tenant's request or token bucket (tenant-wide or for this model) is empty; `retry-after` says when it can pay for this request, the `x-ratelimit-*` headers say which.",
  },
  tokens_exceed_limit: {
    status: 429,
    type: 'tokens',
    doc: "The request's estimated tokens (prompt + `max_tokens`) are more than the tenant's token bucket can ever hold; lower `max_tokens` or raise the bucket's `burst`.",
  },
  too_many_auth_failures: {
    status: 429,
    type: 'requests',
    doc: 'Too many failed authentications from this client address (`server.authFailures`); any key from it is refused, unchecked, until `retry-after`.',
  },
  concurrency_limit_exceeded: {
    status: 429,
    type: 'requests',
    doc: 'The tenant already has `limits.tenants.<name>.concurrency.max` requests in flight across the fleet.',
  },
  queue_tenant_full: {
    status: 429,
    type: 'requests',
    doc: 'This tenant already has `queue.maxQueuedPerTenant` requests waiting for this model on this instance; `retry-after` estimates when the queue drains.',
  },
  upstream_error: {
    // Never answered with these two: the provider's status and type are (classify.ts).
    status: 502,
    type: 'api_error',
    passthrough: true,
    doc: "The provider answered with an HTTP error (other than 401/403). Its status is passed through (a 503 stays a 503, a 404 a 404), and so are its message, `param` and `type`; without a type of its own: `rate_limit_error` for 429, `invalid_request_error` for other 4xx, `api_error` for 5xx. `code` is the provider's, or `upstream_error` when it sent none.",
  },
  upstream_auth_failed: {
    status: 502,
    type: 'api_error',
    doc: "The provider refused the gateway's own credentials (its 401/403); a gateway configuration problem, not the caller's key.",
  },
  upstream_unreachable: {
    status: 502,
    type: 'api_error',
    doc: 'The provider could not be reached (connection refused, DNS failure, no route to host).',
  },
  upstream_bad_response: {
    status: 502,
    type: 'api_error',
    doc: 'The provider closed the connection or sent a response Sluice cannot pass on (too large, cut short, empty stream).',
  },
  upstream_stream_interrupted: {
    status: 502,
    type: 'api_error',
    doc: 'The provider stream broke after bytes reached the client; sent as a final SSE `data: {"error":…}` event.',
  },
  connect_timeout: {
    status: 504,
    type: 'timeout_error',
    doc: 'No connection to the provider within `connectTimeoutMs`.',
  },
  first_token_timeout: {
    status: 504,
    type: 'timeout_error',
    doc: 'No first token (streams) or response headers (JSON) within `firstTokenTimeoutMs`.',
  },
  chunk_gap_timeout: {
    status: 504,
    type: 'timeout_error',
    doc: 'The stream went silent for longer than `chunkGapTimeoutMs`.',
  },
  total_timeout: { status: 504, type: 'timeout_error', doc: 'The call ran past `totalTimeoutMs`.' },
  client_closed_request: {
    status: 499,
    type: 'api_error',
    doc: 'The client went away before the answer was complete (logged, never sent).',
  },
  deployments_unavailable: {
    status: 503,
    type: 'api_error',
    doc: 'Every deployment of the model and of its fallbacks has an open circuit breaker; `retry-after` says when the first one will let a probe through.',
  },
  server_overloaded: {
    status: 503,
    type: 'api_error',
    doc: "This instance's event loop is saturated and it is shedding this request's priority class (batch first, critical last).",
  },
  capacity_exceeded: {
    status: 503,
    type: 'api_error',
    doc: "The model's fleet-wide in-flight capacity for this priority class is in use (`limits.fleet`); higher priorities still have room.",
  },
  provider_budget_exhausted: {
    status: 503,
    type: 'api_error',
    doc: "Every deployment that could serve the request is out of its provider's outbound budget (`limits.providers`); `retry-after` says when one refills.",
  },
  limiter_unavailable: {
    status: 503,
    type: 'api_error',
    doc: 'Redis is unreachable and the tenant is set to fail closed (`failureMode: closed`).',
  },
  queue_full: {
    status: 503,
    type: 'api_error',
    doc: "The model's admission queue on this instance holds all this priority class may fill (or the instance's total is reached); `retry-after` estimates when it drains.",
  },
  queue_wait_exceeds_deadline: {
    status: 503,
    type: 'api_error',
    doc: "From its place in the queue and the model's recent service time, the request could not start before its deadline (`x-sluice-timeout-ms`, the model's total timeout, or `queue.maxWaitMs`); refused at once instead of served late.",
  },
  queue_timeout: {
    status: 503,
    type: 'api_error',
    doc: 'The request waited in the admission queue until its deadline without getting a slot; it never reached a provider.',
  },
  request_log_unavailable: {
    status: 503,
    type: 'api_error',
    doc: 'An `/admin/requests` or `/admin/usage` read failed: the request-log database (or its replica) is unreachable or slower than `requestLog.readTimeoutMs`. Request logging itself goes on (rows wait in the buffer and the spill directory).',
  },
  too_many_connections: {
    status: 503,
    type: 'api_error',
    doc: 'This client address already holds `server.maxConnectionsPerAddress` open connections; the new one is answered and closed at once.',
  },
  shutting_down: {
    status: 503,
    type: 'api_error',
    doc: "This instance is draining for shutdown; retry, another instance will answer. Also how a request still running when `server.drainTimeoutMs` ran out ends: a 503, or a stream's last SSE event.",
  },
  internal_error: {
    status: 500,
    type: 'api_error',
    doc: 'A bug in Sluice; the log line with the request id has details.',
  },
} as const satisfies Record<
  string,
  {
    status: number;
    type: string;
    doc: string;
    /** The answer's status and type are the provider's; docs/errors.md says "provider's" for both. */
    passthrough?: true;
  }
>;

export type ErrorCode = keyof typeof ERROR_CATALOG;
