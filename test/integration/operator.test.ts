/**
 * The operator's commands, on the real process: --port, a port already taken, the pid to signal,
 * POST /admin/reload and print-config.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { DEMO_ADMIN_KEY } from '../../src/config/embedded.ts';
import { runSluiceCommand, startSluiceProcess } from '../helpers/process.ts';

const ADMIN_KEY = 'sk-operator-admin';

function yamlConfig(port: string, models: string[]): string {
  return [
    `server: { host: 127.0.0.1, port: ${port} }`,
    'providers: { fake: { kind: fake } }',
    'models:',
    ...models.map((m) => `  ${m}: { deployments: [{ provider: fake }] }`),
    `tenants: { t: { keys: ["${hashKey('sk-operator-tenant')}"] } }`,
    `admin: { keys: ["${hashKey(ADMIN_KEY)}"] }`,
    'requestLog: { enabled: false }',
  ].join('\n');
}

/** A port nothing listens on (closed again before it is used: loopback, tests only). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function reload(url: string, key: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${url}/admin/reload`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}` },
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

describe('operator commands', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-operator-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('--port overrides server.port; the start line carries the pid; POST /admin/reload answers with the outcome', async () => {
    const file = join(dir, 'port.yaml');
    await writeFile(file, yamlConfig('0', ['alpha']));
    const port = await freePort();
    const p = await startSluiceProcess(['--config', file, '--port', String(port)]);
    try {
      assert.equal(p.url, `http://127.0.0.1:${port}`);
      const started = p.logs.find((l) => l.msg === 'sluice listening')!;
      assert.equal(started.pid, p.child.pid);

      const unauthorised = await request(`${p.url}/admin/reload`, { method: 'POST' });
      assert.equal(unauthorised.statusCode, 401);
      await unauthorised.body.dump();

      assert.deepEqual(await reload(p.url, ADMIN_KEY), {
        status: 200,
        body: { result: 'applied', models: 1, providers: 1 },
      });
      await writeFile(file, yamlConfig('0', ['alpha']).replace('provider: fake', 'provider: nowhere'));
      const rejected = await reload(p.url, ADMIN_KEY);
      assert.equal(rejected.status, 200);
      assert.equal(rejected.body.result, 'rejected');
      assert.equal(rejected.body.path, 'models.alpha.deployments[0].provider');
      assert.match(String(rejected.body.message), /unknown provider "nowhere"/);
      await writeFile(file, yamlConfig('0', ['alpha', 'beta']));
      assert.deepEqual((await reload(p.url, ADMIN_KEY)).body, { result: 'applied', models: 2, providers: 1 });
      // The reload kept --port: the file's port 0 is not "a change that needs a restart".
      assert.ok(!p.logs.some((l) => String(l.msg).includes('take effect on restart')));
    } finally {
      p.kill();
      assert.equal(await p.exited, 0);
    }
  });

  it('a port in use: one fatal line naming the address and the setting to change, exit 1, no stack', async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as { port: number };
    try {
      const file = join(dir, 'busy.yaml');
      // The port from the environment: `${PORT}` is converted to a number.
      await writeFile(file, yamlConfig('"${PORT}"', ['alpha']));
      const fromFile = await runSluiceCommand(['--config', file], { PORT: String(port) });
      assert.equal(fromFile.code, 1);
      const lines = fromFile.stdout.trim().split('\n');
      assert.equal(lines.length, 1, fromFile.stdout);
      const line = JSON.parse(lines[0]!) as Record<string, unknown>;
      assert.equal(line.level, 'fatal');
      assert.equal(line.address, `127.0.0.1:${port}`);
      assert.equal(line.code, 'EADDRINUSE');
      assert.match(
        String(line.msg),
        new RegExp(`127\\.0\\.0\\.1:${port}.*in use.*change server\\.port in .*busy\\.yaml`),
      );
      assert.equal(line.err, undefined);
      assert.doesNotMatch(fromFile.stdout + fromFile.stderr, /\n\s+at /);

      const fromFlag = await runSluiceCommand(['--config', file, '--port', String(port)], { PORT: '0' });
      assert.equal(fromFlag.code, 1);
      assert.match(fromFlag.stdout, /in use by another process; change --port"/);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('--port works with the embedded config too, over SLUICE_PORT', async () => {
    const port = await freePort();
    const p = await startSluiceProcess(['--port', String(port)], {
      SLUICE_PORT: '0',
      OPENAI_API_KEY: '',
      SLUICE_CONFIG: '',
    });
    try {
      assert.equal(p.url, `http://127.0.0.1:${port}`);
      assert.equal((await reload(p.url, DEMO_ADMIN_KEY)).body.result, 'applied');
    } finally {
      p.kill();
      assert.equal(await p.exited, 0);
    }
  });

  it('refuses a --port that is not a port', async () => {
    const r = await runSluiceCommand(['--port', '80a']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--port 80a: not a port/);
  });

  it('print-config shows the effective config with every secret from the environment redacted', async () => {
    const secrets = {
      PROVIDER_KEY: 'sk-provider-secret-1',
      ORG_TOKEN: 'org-token-secret-2',
      REDIS_PASSWORD: 'redis-secret-3',
      PG_PASSWORD: 'pg-secret-4',
      TRACE_TOKEN: 'trace-secret-5',
    };
    const file = join(dir, 'secrets.yaml');
    await writeFile(
      file,
      [
        'server: { host: 127.0.0.1, port: "${PORT}" }',
        'providers:',
        '  up:',
        '    kind: openai',
        '    baseUrl: https://api.example.com/v1',
        '    apiKey: ${PROVIDER_KEY}',
        '    headers: { OpenAI-Organization: org-visible, x-api-key: "${ORG_TOKEN}" }',
        'models: { m: { deployments: [{ provider: up }] } }',
        `tenants: { t: { keys: ["${hashKey('sk-tenant')}"] } }`,
        'limits: { redis: { url: "redis://default:${REDIS_PASSWORD}@127.0.0.1:6379/0" } }',
        'requestLog: { url: "postgres://sluice:${PG_PASSWORD}@127.0.0.1:5432/test" }',
        'tracing: { endpoint: "http://127.0.0.1:4318/v1/traces", headers: { authorization: "Bearer ${TRACE_TOKEN}" } }',
      ].join('\n'),
    );
    const yaml = await runSluiceCommand(['print-config', '--config', file], { ...secrets, PORT: '9191' });
    assert.equal(yaml.code, 0, yaml.stderr);
    const json = await runSluiceCommand(
      ['print-config', '--config', file, '--format', 'json', '--port', '9292'],
      {
        ...secrets,
        PORT: '9191',
      },
    );
    assert.equal(json.code, 0, json.stderr);
    for (const out of [yaml.stdout, json.stdout]) {
      for (const [name, secret] of Object.entries(secrets))
        assert.ok(!out.includes(secret), `${name} leaked`);
    }
    assert.match(yaml.stdout, /^# effective config/);
    assert.match(yaml.stdout, /port: 9191\n/);
    const config = JSON.parse(json.stdout);
    assert.equal(config.server.port, 9292, '--port applies');
    assert.equal(config.providers.up.apiKey, '[redacted]');
    assert.deepEqual(config.providers.up.headers, {
      'OpenAI-Organization': 'org-visible',
      'x-api-key': '[redacted]',
    });
    assert.equal(config.limits.redis.url, 'redis://default:***@127.0.0.1:6379/0');
    assert.equal(config.limits.redis.keyPrefix, 'sluice', 'not a secret');
    assert.equal(config.requestLog.url, 'postgres://sluice:***@127.0.0.1:5432/test');
    assert.equal(config.tracing.headers.authorization, '[redacted]');
    assert.deepEqual(config.tenants.t.keys, [hashKey('sk-tenant')], 'digests stay');
    assert.equal(config.retry.maxAttempts, 4, 'defaults are filled in');
  });

  it('print-config without a file shows the embedded config: no pass-through', async () => {
    const r = await runSluiceCommand(['print-config', '--format', 'json'], {
      SLUICE_CONFIG: '',
      OPENAI_API_KEY: '',
      SLUICE_PORT: '8123',
    });
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(r.stdout);
    assert.equal(config.server.port, 8123);
    assert.deepEqual(Object.keys(config.models), [
      'gpt-4o-mini',
      'gpt-4o',
      'text-embedding-3-small',
      'fake-model',
    ]);
    assert.equal(config.passthrough, undefined);
  });
});
