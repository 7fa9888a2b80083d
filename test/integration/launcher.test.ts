/**
 * The commands as the docs write them: through bin/sluice.mjs (the launcher), and the reload
 * warning for the server settings that need a restart (src/config/restart.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hashKey } from '../../src/auth/keys.ts';
import { type FakeProvider, startFakeProvider } from '../../src/fake-provider/server.ts';
import { waitFor } from '../helpers/harness.ts';
import { startSluiceProcess } from '../helpers/process.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `node bin/sluice.mjs ...args` from the checkout, as the README writes it. */
function launcher(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []) {
  return spawnSync(process.execPath, [...nodeArgs, 'bin/sluice.mjs', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('node bin/sluice.mjs', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-launcher-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hash-key prints the digest', () => {
    const r = launcher(['hash-key', 'sk-launcher-test']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${hashKey('sk-launcher-test')}\n`);
  });

  it('check-config validates a file, and names the field of a bad one', async () => {
    const good = launcher(['check-config', 'config/example.yaml'], { OPENAI_API_KEY: 'sk-placeholder' });
    assert.equal(good.status, 0, good.stderr);
    assert.equal(good.stdout, 'config/example.yaml: ok\n');
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      'providers: { p: { kind: openai, baseUrl: "http://127.0.0.1:9/v1" } }\n' +
        'models: { m: { deployments: [{ provider: nowhere }] } }\n' +
        `tenants: { t: { keys: ["${hashKey('sk-launcher-test')}"] } }\n`,
    );
    const bad = launcher(['check-config', file]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /models\.m\.deployments\[0\]\.provider/);
  });

  it('on a Node.js older than 22.18 says which it needs, instead of a stack trace', () => {
    // Pretend to be Node 22.17 for the launcher's check (it reads process.versions.node).
    const pretend =
      'data:text/javascript,Object.defineProperty(process,"versions",{value:{...process.versions,node:"22.17.1"}})';
    const r = launcher(['hash-key', 'x'], {}, ['--import', pretend]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^sluice: needs Node\.js 22\.18 or newer/);
  });
});

describe('a reload that changes a server setting read only at start', () => {
  let fake: FakeProvider;
  let dir: string;
  before(async () => {
    fake = await startFakeProvider({ port: 0 });
    dir = await mkdtemp(join(tmpdir(), 'sluice-restart-'));
  });
  after(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  const config = (server: string) =>
    [
      `server: { host: 127.0.0.1, port: 0, ${server} }`,
      `providers: { fake: { kind: openai, baseUrl: "${fake.baseUrl}" } }`,
      'models: { m: { deployments: [{ provider: fake }] } }',
      `tenants: { t: { keys: ["${hashKey('sk-launcher-test')}"] } }`,
      'requestLog: { enabled: false }',
    ].join('\n');

  it('logs a warning naming the settings that changed, and only those; the file is applied', async () => {
    const file = join(dir, 'sluice.yaml');
    await writeFile(file, config('bodyLimitBytes: 4194304, drainTimeoutMs: 5000'));
    const p = await startSluiceProcess(['--config', file]);
    try {
      await writeFile(file, config('bodyLimitBytes: 1048576, drainTimeoutMs: 4000'));
      p.kill('SIGHUP');
      await waitFor(() => p.logs.some((l) => l.msg === 'config reloaded'), 10_000, 'reload');
      const warnings = p.logs.filter((l) => String(l.msg).endsWith('take effect on restart'));
      assert.equal(warnings.length, 1, JSON.stringify(warnings));
      assert.equal(warnings[0]!.msg, 'server.bodyLimitBytes changes take effect on restart');
      assert.deepEqual(warnings[0]!.settings, ['server.bodyLimitBytes']);
    } finally {
      p.kill('SIGTERM');
      await p.exited;
    }
  });
});
