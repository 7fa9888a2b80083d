/**
 * /readyz reports each dependency's state and fails only for what is wrong with this instance:
 * draining fails it; Redis down (limits on local fallback, or refused for fail-closed tenants), a
 * request log whose database is down (rows spilling), and a rejected reload are reported while the
 * instance stays ready.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import type { FakeProvider } from '../../src/fake-provider/server.ts';
import { startFakeProvider } from '../../src/fake-provider/server.ts';
import { baseConfig, chatBody, type Harness, startHarness, waitFor } from '../helpers/harness.ts';
import { freePort } from '../helpers/ports.ts';
import { startSluiceProcess } from '../helpers/process.ts';
import { hasRedisServer, startRedisServer } from '../helpers/redis.ts';
import { cleanups, openTestLog } from '../helpers/request-log.ts';

interface Readyz {
  status: string;
  checks: Record<string, { state: string; ready: boolean; detail?: string }>;
}

async function readyz(url: string): Promise<{ code: number; body: Readyz }> {
  const res = await request(`${url}/readyz`);
  return { code: res.statusCode, body: (await res.body.json()) as Readyz };
}

/** /readyz until `done` says so (at most 10 s), running `between` between tries. */
async function readyzUntil(
  url: string,
  done: (body: Readyz) => boolean,
  between: () => Promise<unknown> = async () => {},
): Promise<{ code: number; body: Readyz }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await readyz(url);
    if (done(r.body) || Date.now() > deadline) return r;
    await between();
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function chat(h: Harness): Promise<number> {
  const res = await request(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: h.headers(),
    body: chatBody(),
  });
  await res.body.dump();
  return res.statusCode;
}

function withRedis(url: string, failureMode: 'open' | 'closed') {
  return (fake: FakeProvider) => {
    const base = baseConfig(fake);
    return {
      ...base,
      limits: {
        redis: { url, failureMode, commandTimeoutMs: 200, failuresToOpen: 1, cooldownMs: 200 },
        tenants: { acme: { requests: { limit: 1_000, per: 'minute' } } },
      },
    };
  };
}

test('Redis stopped: /readyz stays 200 and says limits are on local fallback; draining fails it', async (t) => {
  if (!(await hasRedisServer())) {
    if (process.env.CI === 'true') throw new Error('CI: redis-server is required');
    t.skip('redis-server not installed');
    return;
  }
  const defer = cleanups(t);
  const redis = await startRedisServer();
  defer(() => redis.stop());
  const h = await startHarness({ config: withRedis(redis.url, 'open') });
  defer(() => h.close());

  let r = await readyz(h.url);
  assert.equal(r.code, 200);
  assert.equal(r.body.status, 'ready');
  assert.deepEqual(r.body.checks.limits, { state: 'redis', ready: true });
  assert.equal(r.body.checks.requestLog, undefined, 'no request log, no check');

  await redis.stop();
  // The probe reads the connection's state: no request needed for it to notice.
  r = await readyzUntil(h.url, (b) => b.checks.limits?.state === 'local_fallback');
  assert.equal(r.code, 200, 'fail-open limits keep the instance in rotation');
  assert.equal(r.body.checks.limits?.state, 'local_fallback');
  assert.equal(r.body.checks.limits?.ready, true);
  assert.match(String(r.body.checks.limits?.detail), /locally/);
  assert.equal(await chat(h), 200, 'and it serves');

  await redis.start();
  // A decision probes Redis and brings the limits back to it.
  r = await readyzUntil(
    h.url,
    (b) => b.checks.limits?.state === 'redis',
    () => chat(h),
  );
  assert.deepEqual(r.body.checks.limits, { state: 'redis', ready: true });

  h.gateway.startDraining();
  r = await readyz(h.url);
  assert.equal(r.code, 503);
  assert.equal(r.body.status, 'draining');
  assert.deepEqual(r.body.checks.limits, { state: 'redis', ready: true }, 'states still reported');
});

test('Redis down with failureMode closed: still ready, and the detail says who is refused', async (t) => {
  const defer = cleanups(t);
  // Nothing listens on this port: Redis is down from the start.
  const url = `redis://127.0.0.1:${await freePort()}`;
  const h = await startHarness({ config: withRedis(url, 'closed') });
  defer(() => h.close());
  const r = await readyz(h.url);
  assert.equal(r.code, 200);
  assert.equal(r.body.checks.limits?.state, 'local_fallback');
  assert.match(String(r.body.checks.limits?.detail), /every tenant set to failureMode closed get 503/);
  assert.equal(await chat(h), 503);
});

test('Postgres down: /readyz stays 200 and says the request log is spilling', async (t) => {
  const defer = cleanups(t);
  // A Postgres URL where nothing listens: every write fails to connect.
  const { requestLog } = await openTestLog(defer, {
    url: `postgres://postgres@127.0.0.1:${await freePort()}/test`,
    flushIntervalMs: 20,
    writeTimeoutMs: 500,
  });
  const h = await startHarness({ requestLog });
  defer(() => h.close());
  let r = await readyz(h.url);
  assert.equal(r.code, 200);
  assert.deepEqual(r.body.checks.requestLog, { state: 'up', ready: true }, 'no write has failed yet');
  assert.equal(r.body.checks.limits?.state, 'local', 'no Redis configured');

  assert.equal(await chat(h), 200);
  await waitFor(() => !requestLog.writer.stats().healthy, 10_000, 'the failed write');
  r = await readyz(h.url);
  assert.equal(r.code, 200, 'a request log that spills keeps the instance in rotation');
  assert.equal(r.body.status, 'ready');
  assert.equal(r.body.checks.requestLog?.state, 'spilling');
  assert.equal(r.body.checks.requestLog?.ready, true);
  assert.match(String(r.body.checks.requestLog?.detail), /database unavailable/);
});

test('the process: /readyz reports a rejected reload and stays ready', async (t) => {
  const defer = cleanups(t);
  const fake = await startFakeProvider({ port: 0 });
  defer(() => fake.close());
  const dir = await mkdtemp(join(tmpdir(), 'sluice-readyz-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'sluice.yaml');
  const yaml = (kind: string) =>
    [
      'server: { host: 127.0.0.1, port: 0, drainTimeoutMs: 1000 }',
      `providers: { fake: { kind: ${kind}, baseUrl: "${fake.baseUrl}" } }`,
      'models: { m: { deployments: [{ provider: fake }] } }',
      `tenants: { t: { keys: ["${hashKey('sk-readyz-test')}"] } }`,
      'requestLog: { enabled: false }',
    ].join('\n');
  await writeFile(file, yaml('openai'));
  const p = await startSluiceProcess(['--config', file]);
  defer(async () => {
    p.kill('SIGTERM');
    await p.exited;
  });
  let r = await readyz(p.url);
  assert.equal(r.code, 200);
  assert.deepEqual(r.body.checks.config, { state: 'loaded', ready: true });

  await writeFile(file, yaml('banana'));
  p.kill('SIGHUP');
  await waitFor(() => p.logs.some((l) => l.msg === 'config rejected; keeping the running config'), 10_000);
  r = await readyz(p.url);
  assert.equal(r.code, 200, 'the running config still serves');
  assert.equal(r.body.checks.config?.state, 'reload_rejected');
  assert.match(String(r.body.checks.config?.detail), /serving the config loaded before/);

  await writeFile(file, yaml('openai'));
  p.kill('SIGHUP');
  await waitFor(() => p.logs.filter((l) => l.msg === 'config reloaded').length >= 1, 10_000);
  r = await readyz(p.url);
  assert.deepEqual(r.body.checks.config, { state: 'loaded', ready: true });
});
