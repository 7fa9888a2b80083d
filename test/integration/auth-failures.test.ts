/**
 * Failed authentications cost the client address: after `burst` of them, any key from that
 * address (the right one included) is refused with 429 before it is checked, while valid keys
 * from other addresses never notice. Counted per kind, logged once per block with the address.
 * Behind a trusted proxy the address is the forwarded one; from anyone else X-Forwarded-For is
 * ignored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Dispatcher, request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { baseConfig, chatBody, type Harness, startHarness, TENANT_KEY } from '../helpers/harness.ts';
import { agentFrom, metricValue } from '../helpers/raw-http.ts';

const ADMIN_KEY = 'sk-admin-auth-failures-0123456789';
const BURST = 3;

interface Answer {
  status: number;
  code: string | null;
  retryAfter: string | undefined;
}

async function call(
  h: Harness,
  from: Dispatcher,
  key: string | undefined,
  options: { path?: string; forwardedFor?: string } = {},
): Promise<Answer> {
  const path = options.path ?? '/v1/chat/completions';
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  if (options.forwardedFor !== undefined) headers['x-forwarded-for'] = options.forwardedFor;
  const res = await request(`${h.url}${path}`, {
    method: path.startsWith('/admin') ? 'GET' : 'POST',
    headers,
    body: path.startsWith('/admin') ? undefined : chatBody(),
    dispatcher: from,
  });
  const json = (await res.body.json()) as { error?: { code: string } };
  const retryAfter = res.headers['retry-after'];
  return {
    status: res.statusCode,
    code: json.error?.code ?? null,
    retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
  };
}

describe('failed authentications per client address', () => {
  let h: Harness;
  const agents = new Map<string, Dispatcher>();
  const from = (address: string) => {
    let agent = agents.get(address);
    if (agent === undefined) {
      agent = agentFrom(address);
      agents.set(address, agent);
    }
    return agent;
  };
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        ...baseConfig(fake),
        // One token a minute: a blocked address stays blocked for the whole test.
        server: { authFailures: { burst: BURST, perMinute: 1 } },
        admin: { keys: [hashKey(ADMIN_KEY)] },
      }),
    });
  });
  after(async () => {
    for (const agent of agents.values()) await agent.close();
    await h.close();
  });

  it('blocks an address after burst wrong keys: even the right key then gets 429, unchecked', async () => {
    const attacker = from('127.0.0.11');
    const failuresBefore = await metricValue(h.url, 'sluice_auth_failures_total', 'kind="tenant"');
    for (let i = 0; i < BURST; i++) {
      assert.deepEqual(await call(h, attacker, `sk-guess-${i}-0123456789`), {
        status: 401,
        code: 'invalid_api_key',
        retryAfter: undefined,
      });
    }
    const providerCalls = h.fake.stats.requests;
    for (const key of ['sk-guess-next-0123456789', TENANT_KEY]) {
      const blocked = await call(h, attacker, key);
      assert.equal(blocked.status, 429);
      assert.equal(blocked.code, 'too_many_auth_failures');
      assert.ok(Number(blocked.retryAfter) >= 1, `retry-after ${blocked.retryAfter}`);
    }
    assert.equal(h.fake.stats.requests, providerCalls, 'nothing reached the provider');
    assert.equal(
      (await metricValue(h.url, 'sluice_auth_failures_total', 'kind="tenant"')) - failuresBefore,
      BURST,
      'refusals while blocked are not failures',
    );
    const blockLines = h.logs.filter((l) => String(l.msg).startsWith('authentication failures'));
    assert.equal(blockLines.length, 1);
    assert.equal(blockLines[0]!.level, 'warn');
    assert.equal(blockLines[0]!.address, '127.0.0.11');
    assert.equal(blockLines[0]!.kind, 'tenant');
    assert.ok(!h.rawLogs().includes('sk-guess'), 'guessed keys are never logged');
  });

  it('valid keys from other addresses are not affected, and each address has its own bucket', async () => {
    const neighbour = from('127.0.0.12');
    assert.equal((await call(h, neighbour, TENANT_KEY)).status, 200);
    assert.equal((await call(h, neighbour, 'sk-wrong-0123456789')).status, 401);
    assert.equal((await call(h, neighbour, TENANT_KEY)).status, 200);
    // The attacker's neighbours on 127.0.0.1 (the test's own address) too.
    const res = await request(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: h.headers(),
      body: chatBody(),
    });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
  });

  it('a missing key counts as a failure; while blocked it is still answered 401', async () => {
    const keyless = from('127.0.0.13');
    for (let i = 0; i < BURST; i++) assert.equal((await call(h, keyless, undefined)).code, 'missing_api_key');
    assert.equal((await call(h, keyless, TENANT_KEY)).code, 'too_many_auth_failures');
    assert.equal((await call(h, keyless, undefined)).code, 'missing_api_key');
  });

  it('wrong admin keys count as kind admin and block the admin key too', async () => {
    const prober = from('127.0.0.14');
    assert.equal((await call(h, prober, ADMIN_KEY, { path: '/admin/queues' })).status, 200);
    for (let i = 0; i < BURST; i++) {
      assert.equal((await call(h, prober, `sk-admin-guess-${i}`, { path: '/admin/queues' })).status, 401);
    }
    const blocked = await call(h, prober, ADMIN_KEY, { path: '/admin/queues' });
    assert.equal(blocked.status, 429);
    assert.equal(blocked.code, 'too_many_auth_failures');
    assert.ok((await metricValue(h.url, 'sluice_auth_failures_total', 'kind="admin"')) >= BURST);
    assert.equal((await call(h, from('127.0.0.15'), ADMIN_KEY, { path: '/admin/queues' })).status, 200);
  });

  it('without trusted proxies, X-Forwarded-For does not change who is blocked', async () => {
    const spoofer = from('127.0.0.16');
    for (let i = 0; i < BURST; i++) {
      await call(h, spoofer, 'sk-wrong-0123456789', { forwardedFor: `198.51.100.${i}` });
    }
    assert.equal(
      (await call(h, spoofer, TENANT_KEY, { forwardedFor: '198.51.100.200' })).code,
      'too_many_auth_failures',
    );
  });
});

describe('failed authentications behind a trusted proxy', () => {
  let h: Harness;
  const proxy = agentFrom('127.0.0.21');
  const stranger = agentFrom('127.0.0.22');
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        ...baseConfig(fake),
        server: { trustedProxies: ['127.0.0.21'], authFailures: { burst: BURST, perMinute: 1 } },
      }),
    });
  });
  after(async () => {
    await proxy.close();
    await stranger.close();
    await h.close();
  });

  it('blocks the forwarded client, not the proxy and not the clients behind it', async () => {
    for (let i = 0; i < BURST; i++) {
      await call(h, proxy, 'sk-wrong-0123456789', { forwardedFor: '203.0.113.5, 198.51.100.7' });
    }
    const blocked = await call(h, proxy, TENANT_KEY, { forwardedFor: '198.51.100.7' });
    assert.equal(blocked.code, 'too_many_auth_failures');
    assert.equal((await call(h, proxy, TENANT_KEY, { forwardedFor: '198.51.100.8' })).status, 200);
    // A client cannot unblock itself by writing another address to the left.
    assert.equal(
      (await call(h, proxy, TENANT_KEY, { forwardedFor: '198.51.100.9, 198.51.100.7' })).code,
      'too_many_auth_failures',
    );
    const line = h.logs.find((l) => String(l.msg).startsWith('authentication failures'));
    assert.equal(line?.address, '198.51.100.7');
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    for (let i = 0; i < BURST; i++) {
      await call(h, stranger, 'sk-wrong-0123456789', { forwardedFor: '198.51.100.50' });
    }
    assert.equal((await call(h, stranger, TENANT_KEY)).code, 'too_many_auth_failures');
    // The address it claimed to be was never charged.
    assert.equal((await call(h, proxy, TENANT_KEY, { forwardedFor: '198.51.100.50' })).status, 200);
  });
});
