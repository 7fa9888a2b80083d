/** Config swaps are atomic between requests: running requests keep their snapshot, pools stay warm. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { FakeProvider } from '../../src/fake-provider/server.ts';
import { compileRuntime } from '../../src/runtime.ts';
import { type Harness, startHarness, TENANT_KEY, waitFor } from '../helpers/harness.ts';

function raw(fake: FakeProvider, models: string[], connections = 4): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0 },
    providers: {
      fake: { kind: 'openai', baseUrl: fake.baseUrl, connections },
      paced: { kind: 'openai', baseUrl: `${fake.origin}/fake/chunks=6,chunk-gap-ms=100/v1`, connections },
    },
    models: Object.fromEntries(
      models.map((m) => [m, { deployments: [{ provider: m === 'slow' ? 'paced' : 'fake' }] }]),
    ),
    tenants: { acme: { keys: [hashKey(TENANT_KEY)] } },
  };
}

describe('config swap', () => {
  let h: Harness;
  let fake: FakeProvider;
  before(async () => {
    h = await startHarness({ config: (f) => raw(f, ['a', 'slow']) });
    fake = h.fake;
  });
  after(() => h.close());

  const apply = (models: string[], connections = 4) =>
    h.gateway.apply(compileRuntime(validateConfig(raw(fake, models, connections), {})));

  const call = async (model: string) => {
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] }),
    });
    await res.body.dump();
    return res.statusCode;
  };

  it('a request that started before a swap finishes on its own config', async () => {
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: JSON.stringify({ model: 'slow', stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    let text = '';
    const reading = (async () => {
      for await (const c of res.body) text += c.toString();
    })();
    await waitFor(() => text.includes('"content"'));
    apply(['a']); // 'slow' is gone for new requests
    await reading;
    assert.match(text, /data: \[DONE\]\n\n$/);
    assert.equal(await call('slow'), 404);
    assert.equal(await call('a'), 200);
  });

  it('keeps a warm pool when its origin settings did not change, replaces it when they did', async () => {
    assert.equal(await call('a'), 200);
    const before = h.gateway.pools.stats().find((s) => s.origin === fake.origin)!;
    assert.ok(before.connected >= 1, 'a keep-alive connection is open');
    apply(['a', 'b']);
    const same = h.gateway.pools.stats().find((s) => s.origin === fake.origin)!;
    assert.equal(same.connected, before.connected, 'same pool, same open connections');
    apply(['a', 'b'], 8);
    const fresh = h.gateway.pools.stats().find((s) => s.origin === fake.origin)!;
    assert.equal(fresh.connected, 0, 'a new pool for the new connection count');
    assert.equal(await call('b'), 200);
  });
});
