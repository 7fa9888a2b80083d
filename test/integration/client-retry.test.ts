/**
 * x-should-retry: the official SDK, at its default two retries, must not multiply what Sluice
 * already decided. A provider 401 reaches the provider once, a 503 that Sluice retried reaches it
 * retry.maxAttempts times (not three times that), and a limit that refills says "retry, after this".
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { type Harness, OTHER_TENANT_KEY, startHarness, TENANT_KEY } from '../helpers/harness.ts';
import { fakeModels } from '../helpers/models.ts';

describe('client retries (openai SDK, default maxRetries)', () => {
  let h: Harness;
  let client: OpenAI;
  const count = (name: string) => h.fake.stats.byBehaviour[name] ?? 0;
  before(async () => {
    h = await startHarness({
      config: (fake) => {
        const config = fakeModels(
          fake,
          {
            ok: { deployments: { okdep: {} } },
            unauthorised: { deployments: { d401: { behaviour: 'status=401' } } },
            down: { deployments: { d503: { behaviour: 'status=503' } } },
            badRequest: { deployments: { d400: { behaviour: 'status=400' } } },
          },
          { retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 }, breaker: { volumeThreshold: 1000 } },
        );
        return {
          ...config,
          tenants: {
            ...(config.tenants as object),
            limited: { keys: [hashKey(OTHER_TENANT_KEY)] },
          },
          limits: { tenants: { limited: { requests: { limit: 1, per: 'minute' } } } },
        };
      },
    });
    // The SDK's defaults (maxRetries 2), with its backoff kept short for the test.
    client = new OpenAI({ baseURL: h.baseURL, apiKey: TENANT_KEY, timeout: 20_000 });
  });
  after(() => h.close());

  const create = (model: string) =>
    client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });

  it('a provider 401 (502 upstream_auth_failed) reaches the provider once', async () => {
    await assert.rejects(create('unauthorised'), (err: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(err.status, 502);
      assert.equal(err.headers?.get('x-should-retry'), 'false');
      return true;
    });
    assert.equal(count('d401'), 1);
  });

  it('a provider 503 that Sluice retried reaches it maxAttempts times, not three times that', async () => {
    await assert.rejects(create('down'), (err: InstanceType<typeof OpenAI.APIError>) => err.status === 503);
    assert.equal(count('d503'), 3);
  });

  it('a provider 400 is passed on once, marked final', async () => {
    await assert.rejects(create('badRequest'), (err: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(err.headers?.get('x-should-retry'), 'false');
      return err.status === 400;
    });
    assert.equal(count('d400'), 1);
  });

  it('a refusal that a wait can fix says so: x-should-retry true with retry-after', async () => {
    const call = () =>
      request(`${h.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${OTHER_TENANT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'ok', messages: [{ role: 'user', content: 'hi' }] }),
      });
    const first = await call();
    await first.body.dump();
    assert.equal(first.statusCode, 200);
    const second = await call();
    await second.body.dump();
    assert.equal(second.statusCode, 429);
    assert.equal(second.headers['x-should-retry'], 'true');
    assert.ok(Number(second.headers['retry-after']) >= 1);
  });
});
