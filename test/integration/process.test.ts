/** The process as operators run it: config errors, embedded defaults, live reload, graceful drain. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { DEMO_ADMIN_KEY, DEMO_KEY } from '../../src/config/embedded.ts';
import { type FakeProvider, startFakeProvider } from '../../src/fake-provider/server.ts';
import { waitFor } from '../helpers/harness.ts';
import { createTestDatabase, requirePostgres } from '../helpers/postgres.ts';
import { runSluiceCommand, startSluiceProcess } from '../helpers/process.ts';

const KEY = 'sk-process-test-key';

function yamlConfig(fake: FakeProvider, models: string[], extra = ''): string {
  return [
    'server: { host: 127.0.0.1, port: 0, drainTimeoutMs: 5000 }',
    'providers:',
    `  fake: { kind: openai, baseUrl: "${fake.baseUrl}", apiKey: "\${TEST_PROVIDER_KEY}" }`,
    `  paced: { kind: openai, baseUrl: "${fake.origin}/fake/chunks=8,chunk-gap-ms=100/v1" }`,
    `  stall: { kind: openai, baseUrl: "${fake.origin}/fake/stall-after=1/v1" }`,
    'models:',
    ...models.map(
      (m) => `  ${m}: { deployments: [{ provider: ${m === 'paced' || m === 'stall' ? m : 'fake'} }] }`,
    ),
    'tenants:',
    `  t: { keys: ["${hashKey(KEY)}"] }`,
    // The request log is tested on its own; here it would only add an embedded database per start.
    'requestLog: { enabled: false }',
    extra,
  ].join('\n');
}

async function waitForAsync(predicate: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function modelIds(url: string): Promise<string[]> {
  const res = await request(`${url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
  const body = (await res.body.json()) as { data: Array<{ id: string }> };
  return body.data.map((m) => m.id).sort();
}

describe('the sluice process', () => {
  let fake: FakeProvider;
  let dir: string;
  before(async () => {
    fake = await startFakeProvider({ port: 0 });
    dir = await mkdtemp(join(tmpdir(), 'sluice-test-'));
  });
  after(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a bad config at start: non-zero exit and the path of the bad field', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, yamlConfig(fake, ['a']).replace('provider: fake', 'provider: nowhere'));
    const r = await runSluiceCommand(['--config', file], { TEST_PROVIDER_KEY: 'x' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /models\.a\.deployments\[0\]\.provider: unknown provider "nowhere"/);
    const missing = await runSluiceCommand(['--config', join(dir, 'good.yaml')], {});
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read config file/);
  });

  it('refuses a config whose ${ENV} secret is not set, naming the field', async () => {
    const file = join(dir, 'env.yaml');
    await writeFile(file, yamlConfig(fake, ['a']));
    assert.equal(process.env.TEST_PROVIDER_KEY, undefined);
    const r = await runSluiceCommand(['--config', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /providers\.fake\.apiKey: environment variable TEST_PROVIDER_KEY is not set/);
  });

  it('sluice migrate applies the request-log schema once, to DATABASE_URL', async (t) => {
    if (!(await requirePostgres(t))) return;
    const database = await createTestDatabase();
    try {
      const env = { DATABASE_URL: database.url, SLUICE_CONFIG: '', OPENAI_API_KEY: '' };
      const first = await runSluiceCommand(['migrate'], env);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /: applied 1\n$/);
      const second = await runSluiceCommand(['migrate'], env);
      assert.match(second.stdout, /: up to date\n$/);
      const bad = await runSluiceCommand(['migrate'], {
        ...env,
        DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nope',
      });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /migrate failed on postgres:\/\/postgres@127\.0\.0\.1:1\/nope/);
    } finally {
      await database.drop();
    }
  });

  it('starts on embedded defaults with no config and answers the demo key', async () => {
    const p = await startSluiceProcess([], { SLUICE_PORT: '0', OPENAI_API_KEY: '', SLUICE_CONFIG: '' });
    try {
      const res = await request(`${p.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEMO_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
      });
      assert.equal(res.statusCode, 200);
      const body = (await res.body.json()) as { choices: Array<{ message: { content: string } }> };
      assert.ok(body.choices[0]!.message.content.length > 0);
      assert.equal(res.headers['x-sluice-deployment'], 'fake/gpt-4o-mini@local');
      // The request log works with no database server: embedded PGlite under ./data.
      const requestId = String(res.headers['x-request-id']);
      let rows: Array<{ requestId: string; tenant: string; status: number }> = [];
      await waitForAsync(async () => {
        const page = await request(`${p.url}/admin/requests?limit=10`, {
          headers: { authorization: `Bearer ${DEMO_ADMIN_KEY}` },
        });
        rows = ((await page.body.json()) as { data: typeof rows }).data;
        return rows.length > 0;
      }, 10_000);
      assert.deepEqual(
        rows.map((r) => [r.requestId, r.tenant, r.status]),
        [[requestId, 'demo', 200]],
      );
    } finally {
      p.kill();
      assert.equal(await p.exited, 0);
    }
  });

  it('with server.metricsPort, serves /metrics on that port and names it in the start line', async () => {
    const file = join(dir, 'metrics-port.yaml');
    await writeFile(
      file,
      yamlConfig(fake, ['alpha']).replace('drainTimeoutMs: 5000 }', 'drainTimeoutMs: 5000, metricsPort: 0 }'),
    );
    const p = await startSluiceProcess(['--config', file], { TEST_PROVIDER_KEY: 'k' });
    try {
      const started = p.logs.find((l) => l.msg === 'sluice listening')!;
      const metricsUrl = String(started.metrics);
      assert.notEqual(metricsUrl, `${p.url}/metrics`);
      const scraped = await request(metricsUrl);
      assert.equal(scraped.statusCode, 200);
      assert.match(await scraped.body.text(), /sluice_requests_in_flight/);
      const onApi = await request(`${p.url}/metrics`);
      assert.equal(onApi.statusCode, 404);
      await onApi.body.dump();
    } finally {
      p.kill();
      assert.equal(await p.exited, 0);
    }
  });

  it('picks up config edits without a restart, refuses a bad edit and keeps the running config', async () => {
    const file = join(dir, 'live.yaml');
    await writeFile(file, yamlConfig(fake, ['alpha']));
    const p = await startSluiceProcess(['--config', file], { TEST_PROVIDER_KEY: 'k' });
    try {
      assert.deepEqual(await modelIds(p.url), ['alpha']);

      await writeFile(file, yamlConfig(fake, ['alpha', 'beta']));
      await waitFor(() => p.logs.some((l) => l.msg === 'config reloaded'), 5_000, 'file-watch reload');
      assert.deepEqual(await modelIds(p.url), ['alpha', 'beta']);

      await writeFile(file, yamlConfig(fake, ['gamma']).replace('kind: openai', 'kind: banana'));
      await waitFor(() => p.logs.some((l) => l.msg === 'config rejected; keeping the running config'), 5_000);
      const rejected = p.logs.find((l) => l.msg === 'config rejected; keeping the running config')!;
      assert.equal(rejected.path, 'providers.fake.kind');
      assert.deepEqual(await modelIds(p.url), ['alpha', 'beta'], 'the running config stays');

      // SIGHUP reloads too (the watcher may also fire; either way the new file is applied once valid).
      await writeFile(file, yamlConfig(fake, ['delta']));
      p.kill('SIGHUP');
      await waitFor(() => p.logs.some((l) => l.msg === 'config reloaded' && l.reason === 'SIGHUP'), 5_000);
      await waitFor(() => p.logs.filter((l) => l.msg === 'config reloaded').length >= 2, 5_000);
      assert.deepEqual(await modelIds(p.url), ['delta']);
    } finally {
      p.kill();
      await p.exited;
    }
  });

  it('on SIGTERM stops accepting, lets a running stream finish, then exits 0', async () => {
    const file = join(dir, 'drain.yaml');
    await writeFile(file, yamlConfig(fake, ['paced']));
    const p = await startSluiceProcess(['--config', file], { TEST_PROVIDER_KEY: 'k' });
    const res = await request(`${p.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'paced', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text: string[] = [];
    const reading = (async () => {
      for await (const chunk of res.body) text.push(chunk.toString());
    })();
    await waitFor(() => text.join('').includes('"content"'), 5_000, 'first chunk');
    p.kill('SIGTERM');
    await waitFor(() => p.logs.some((l) => l.msg === 'draining'), 5_000);
    await assert.rejects(request(`${p.url}/healthz`), /ECONNREFUSED|other side closed|SocketError/);
    await reading;
    assert.match(text.join(''), /data: \[DONE\]\n\n$/, 'the in-flight stream completed');
    assert.equal(await p.exited, 0);
    assert.ok(
      !p.logs.some((l) => l.msg?.toString().startsWith('drain timeout')),
      'finished well before the timeout',
    );
  });

  it('on SIGTERM, a stream still running at drainTimeoutMs is cut and the process exits', async () => {
    const file = join(dir, 'drain-timeout.yaml');
    await writeFile(file, yamlConfig(fake, ['stall']).replace('drainTimeoutMs: 5000', 'drainTimeoutMs: 300'));
    const p = await startSluiceProcess(['--config', file], { TEST_PROVIDER_KEY: 'k' });
    const res = await request(`${p.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stall', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const reading = res.body.text().catch(() => 'cut');
    const t0 = performance.now();
    p.kill('SIGTERM');
    assert.equal(await p.exited, 0);
    assert.ok(performance.now() - t0 < 3_000, 'exited soon after the drain timeout');
    await reading;
  });
});
