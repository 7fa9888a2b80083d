import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errors } from 'undici';
import { renderError } from '../../src/errors/render.ts';
import {
  classifyUpstreamError,
  providerErrorFromResponse,
  UpstreamAbort,
} from '../../src/upstream/classify.ts';

describe('classifyUpstreamError', () => {
  const cases: Array<[unknown, string]> = [
    [new errors.ConnectTimeoutError(), 'connect_timeout'],
    [new errors.HeadersTimeoutError(), 'first_token_timeout'],
    [new errors.BodyTimeoutError(), 'chunk_gap_timeout'],
    [Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), 'upstream_unreachable'],
    [Object.assign(new Error('dns'), { code: 'ENOTFOUND' }), 'upstream_unreachable'],
    [new errors.SocketError('other side closed'), 'upstream_bad_response'],
  ];
  for (const [err, code] of cases) {
    it(`${(err as Error).constructor.name} ${(err as { code?: string }).code} -> ${code}`, () => {
      assert.equal(classifyUpstreamError(err, 'p/m@r').code, code);
    });
  }
  it('a dropped socket after bytes were relayed is an interrupted stream', () => {
    assert.equal(
      classifyUpstreamError(new errors.SocketError('x'), 'p/m@r', undefined, true).code,
      'upstream_stream_interrupted',
    );
  });
  it("Sluice's own abort reasons win over the error undici reports", () => {
    const ac = new AbortController();
    ac.abort(new UpstreamAbort('total_timeout'));
    const e = classifyUpstreamError(new errors.RequestAbortedError(), 'p/m@r', ac.signal);
    assert.equal(e.code, 'total_timeout');
    assert.equal(e.status, 504);
    assert.match(e.message, /p\/m@r/);
  });
});

describe('providerErrorFromResponse', () => {
  it("keeps the provider's OpenAI-shaped error and status", () => {
    const e = providerErrorFromResponse(
      429,
      '{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}',
      '2',
    );
    assert.equal(e.status, 429);
    assert.equal(e.retryAfterSeconds, 2);
    assert.deepEqual(renderError(e), {
      error: { message: 'slow down', type: 'requests', param: null, code: 'rate_limit_exceeded' },
    });
  });
  it('summarises a non-JSON body instead of echoing it', () => {
    const e = providerErrorFromResponse(502, '<html>bad gateway</html>', undefined);
    const body = renderError(e);
    assert.equal(body.error.message, 'Provider returned HTTP 502');
    assert.equal(body.error.code, 'upstream_error');
    assert.equal(body.error.type, 'api_error');
  });
  it("a provider's 401/403 is the gateway's credential problem: 502, and the provider's message is not echoed", () => {
    for (const status of [401, 403]) {
      const e = providerErrorFromResponse(
        status,
        '{"error":{"message":"Incorrect API key provided: sk-abc***xyz","code":"invalid_api_key"}}',
        undefined,
      );
      assert.equal(e.status, 502);
      assert.equal(e.code, 'upstream_auth_failed');
      assert.ok(!renderError(e).error.message.includes('sk-abc'));
    }
  });

  it("prefers OpenAI's retry-after-ms to Retry-After", () => {
    assert.equal(providerErrorFromResponse(429, '', '5', '250').retryAfterSeconds, 0.25);
    assert.equal(providerErrorFromResponse(429, '', '5', undefined).retryAfterSeconds, 5);
  });

  it('ignores a nonsense retry-after', () => {
    assert.equal(providerErrorFromResponse(503, '', 'soon').retryAfterSeconds, undefined);
  });
});
