/** Other /v1/* paths go untouched to the configured provider, with the provider's key, never the client's. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { validateConfig } from '../../src/config/load.ts';
import { compileRuntime } from '../../src/runtime.ts';
import { type Harness, PROVIDER_KEY, startHarness, TENANT_KEY } from '../helpers/harness.ts';

describe('pass-through', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        providers: {
          // The base path carries a fake-provider behaviour segment, so the rewrite must keep it.
          files: {
            kind: 'openai',
            baseUrl: `${fake.origin}/fake/headers-delay-ms=1/v1`,
            apiKey: PROVIDER_KEY,
          },
        },
        models: { m: { deployments: [{ provider: 'files' }] } },
        tenants: { acme: { keys: [hashKey(TENANT_KEY)] } },
        passthrough: { provider: 'files' },
      }),
    });
  });
  after(() => h.close());

  it('proxies GET with query to the provider base path, swapping the key', async () => {
    const res = await request(`${h.url}/v1/files?purpose=batch&limit=2`, {
      headers: { authorization: `Bearer ${TENANT_KEY}`, cookie: 'session=1', 'x-custom': 'kept' },
    });
    assert.equal(res.statusCode, 200);
    const echo = (await res.body.json()) as Record<string, unknown>;
    assert.equal(echo.object, 'fake.echo');
    assert.equal(echo.path, '/v1/files');
    assert.equal(echo.authorization, `Bearer ${PROVIDER_KEY}`);
    const seen = h.fake.stats.lastRequest!;
    assert.match(seen.url, /^\/fake\/headers-delay-ms=1\/v1\/files\?/);
    assert.match(seen.url, /purpose=batch/);
    assert.equal(seen.headers.cookie, undefined, 'cookies are not forwarded');
    assert.equal(seen.headers['x-custom'], 'kept');
    assert.ok(
      !JSON.stringify(seen.headers).includes(TENANT_KEY),
      'the Sluice key never reaches the provider',
    );
    assert.ok(res.headers['x-request-id']);
  });

  it('proxies POST bodies untouched', async () => {
    const body = JSON.stringify({ input_file_id: 'file-1', endpoint: '/v1/chat/completions' });
    const res = await request(`${h.url}/v1/batches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
      body,
    });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.equal(h.fake.stats.lastRequest!.body, body);
    assert.equal(h.fake.stats.lastRequest!.method, 'POST');
  });

  it('an unreachable pass-through provider -> 502 upstream_unreachable in OpenAI shape', async () => {
    const config = validateConfig(
      {
        providers: { gone: { kind: 'openai', baseUrl: 'http://127.0.0.1:1/v1' } },
        models: { m: { deployments: [{ provider: 'gone' }] } },
        tenants: { acme: { keys: [hashKey(TENANT_KEY)] } },
        passthrough: { provider: 'gone' },
      },
      {},
    );
    const previous = h.gateway.current();
    h.gateway.apply(compileRuntime(config));
    try {
      const res = await request(`${h.url}/v1/files`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
      assert.equal(res.statusCode, 502);
      const body = (await res.body.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'upstream_unreachable');
    } finally {
      h.gateway.apply(previous);
    }
  });

  it('requires a Sluice key', async () => {
    const before = h.fake.stats.requests;
    const res = await request(`${h.url}/v1/files`);
    assert.equal(res.statusCode, 401);
    const body = (await res.body.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'missing_api_key');
    assert.equal(h.fake.stats.requests, before, 'nothing reached the provider');
  });
});
