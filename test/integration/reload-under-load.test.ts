/**
 * Editing the routing config must be safe at any moment: while JSON requests, streams and requests
 * waiting in the admission queue are running, models move between providers on different origins
 * again and again, and not one request fails. Each request finishes on the snapshot it started
 * with; what only an old snapshot refers to (deployment health, pools) is swept once it is unused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { validateConfig } from '../../src/config/load.ts';
import { type FakeProvider, startFakeProvider } from '../../src/fake-provider/server.ts';
import { compileRuntime } from '../../src/runtime.ts';
import { type Harness, startHarness, TENANT_KEY, waitFor } from '../helpers/harness.ts';

function raw(one: FakeProvider, two: FakeProvider, on: 'one' | 'two'): Record<string, unknown> {
  const model = (provider: string) => ({
    deployments: [{ provider, model: 'fake-model' }],
    // Few slots, so requests also wait in the admission queue across reloads.
    queue: { maxConcurrent: 4, maxQueued: 1_000 },
  });
  return {
    server: { host: '127.0.0.1', port: 0 },
    // The breaker and retries must not hide a failure: every attempt has to succeed.
    retry: { maxAttempts: 1 },
    providers: {
      [`${on}-json`]: { kind: 'openai', baseUrl: (on === 'one' ? one : two).baseUrl, connections: 4 },
      [`${on}-stream`]: {
        kind: 'openai',
        baseUrl: `${(on === 'one' ? one : two).origin}/fake/chunks=4,chunk-gap-ms=15/v1`,
        connections: 4,
      },
    },
    models: { json: model(`${on}-json`), stream: model(`${on}-stream`) },
    tenants: { acme: { keys: [hashKey(TENANT_KEY)] } },
  };
}

describe('reloads under load', () => {
  let h: Harness;
  let two: FakeProvider;
  const agent = new Agent({ connections: 64 });
  before(async () => {
    two = await startFakeProvider({ host: '127.0.0.1', port: 0 });
    h = await startHarness({ config: (one) => raw(one, two, 'one') });
  });
  after(async () => {
    await h.close();
    await two.close();
    await agent.close();
  });

  it('models moved between providers every 40 ms fail no request (JSON, streams, queued)', async () => {
    const configs = {
      one: compileRuntime(validateConfig(raw(h.fake, two, 'one'), {})),
      two: compileRuntime(validateConfig(raw(h.fake, two, 'two'), {})),
    };
    const failures: string[] = [];
    let done = 0;
    let reloads = 0;
    const until = performance.now() + 3_000;
    const call = async (stream: boolean) => {
      const res = await request(`${h.url}/v1/chat/completions`, {
        method: 'POST',
        dispatcher: agent,
        headers: h.headers(),
        body: JSON.stringify({
          model: stream ? 'stream' : 'json',
          stream,
          messages: [{ role: 'user', content: 'x' }],
        }),
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) failures.push(`${res.statusCode} ${text.slice(0, 200)}`);
      else if (stream && !text.endsWith('data: [DONE]\n\n')) failures.push(`stream cut: ${text.slice(-200)}`);
      done++;
    };
    const worker = async (i: number) => {
      // Bounded in time and count.
      for (let n = 0; n < 500 && performance.now() < until; n++) await call((i + n) % 2 === 0);
    };
    const reloader = (async () => {
      for (let n = 0; n < 200 && performance.now() < until; n++) {
        await new Promise((r) => setTimeout(r, 40));
        h.gateway.apply(n % 2 === 0 ? configs.two : configs.one);
        reloads++;
      }
    })();
    await Promise.all([reloader, ...Array.from({ length: 24 }, (_, i) => worker(i))]);
    const errors = h.logs.filter((l) => l.msg === 'internal error').slice(0, 2);
    assert.deepEqual(failures.slice(0, 5), [], JSON.stringify(errors));
    assert.ok(reloads >= 20, `${reloads} reloads`);
    assert.ok(done >= 100, `${done} requests`);
    assert.ok(h.fake.stats.requests > 0 && two.stats.requests > 0, 'both providers served');

    // Once nothing runs on the old snapshot, its deployments and pools are swept.
    const current = h.gateway.current();
    const ids = [...current.models.values()].flatMap((m) => m.deployments.map((d) => d.id)).sort();
    await waitFor(
      () =>
        h.gateway.health
          .snapshot()
          .map((s) => s.deployment)
          .sort()
          .join() === ids.join(),
      5_000,
      'old deployments swept',
    );
    const origins = new Set([...current.providers.values()].map((p) => p.origin));
    assert.deepEqual(new Set(h.gateway.pools.stats().map((s) => s.origin)), origins);
  });
});
