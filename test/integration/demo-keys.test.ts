/**
 * The embedded config's demo keys are accepted from a loopback client only, decided by the
 * socket's address: 127.0.0.2 (another loopback address, as a local forwarder would use) and a
 * spoofed X-Forwarded-For get the same 401 as a wrong key, even with trusted proxies configured.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Dispatcher, request } from 'undici';
import { buildApp, type Gateway } from '../../src/app.ts';
import { DEMO_ADMIN_KEY, DEMO_KEY, embeddedConfig } from '../../src/config/embedded.ts';
import { validateConfig } from '../../src/config/load.ts';
import { type FakeProvider, startFakeProvider } from '../../src/fake-provider/server.ts';
import { compileRuntime } from '../../src/runtime.ts';
import { createLoggers } from '../../src/telemetry/logger.ts';
import { agentFrom } from '../helpers/raw-http.ts';

async function startEmbedded(server: Record<string, unknown> = {}) {
  const fake = await startFakeProvider({ host: '127.0.0.1', port: 0 });
  const raw = embeddedConfig({}) as { server: Record<string, unknown> };
  raw.server = { ...raw.server, port: 0, ...server };
  const runtime = compileRuntime(validateConfig(raw, {}), { embeddedFakeBaseUrl: fake.baseUrl });
  const loggers = createLoggers('silent', { write() {} });
  const gateway = await buildApp(runtime, { logger: loggers.log, accessLogger: loggers.access });
  const url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  return { fake, gateway, url };
}

describe('demo keys: loopback clients only', () => {
  let fake: FakeProvider;
  let gateway: Gateway;
  let url: string;
  const remote = agentFrom('127.0.0.2');
  before(async () => {
    // 127.0.0.2 is trusted as a proxy here: its X-Forwarded-For is believed for everything else.
    ({ fake, gateway, url } = await startEmbedded({ trustedProxies: ['127.0.0.2'] }));
  });
  after(async () => {
    await remote.close();
    await gateway.shutdown(1_000);
    await fake.close();
  });

  const get = async (path: string, key: string, from?: Dispatcher, forwardedFor?: string) => {
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (forwardedFor) headers['x-forwarded-for'] = forwardedFor;
    const res = await request(`${url}${path}`, { headers, dispatcher: from });
    const json = (await res.body.json()) as { error?: { code: string } };
    return { status: res.statusCode, code: json.error?.code };
  };

  it('marks the demo tenant and admin keys loopback-only in the compiled runtime', () => {
    const runtime = gateway.current();
    assert.equal(runtime.tenants.lookup(DEMO_KEY)?.loopbackOnly, true);
    assert.equal(runtime.adminLoopbackOnly, true);
  });

  it('accepts them from 127.0.0.1', async () => {
    assert.equal((await get('/v1/models', DEMO_KEY)).status, 200);
    assert.equal((await get('/admin/queues', DEMO_ADMIN_KEY)).status, 200);
  });

  it('refuses them from 127.0.0.2 like a wrong key', async () => {
    assert.deepEqual(await get('/v1/models', DEMO_KEY, remote), { status: 401, code: 'invalid_api_key' });
    assert.deepEqual(await get('/admin/queues', DEMO_ADMIN_KEY, remote), {
      status: 401,
      code: 'invalid_api_key',
    });
  });

  it('refuses them with X-Forwarded-For: 127.0.0.1, even from a trusted proxy', async () => {
    assert.equal((await get('/v1/models', DEMO_KEY, remote, '127.0.0.1')).status, 401);
    assert.equal((await get('/admin/queues', DEMO_ADMIN_KEY, remote, '::1')).status, 401);
  });
});
