/**
 * Reloading a large config in a real process: the gateway keeps answering while the new config
 * loads (parsed and validated in a worker thread, compiled a slice per turn), requests in flight
 * all succeed, the new config is applied, and a storm of SIGHUPs costs at most two loads.
 * How long the event loop waits is measured by bench/config-reload.ts, not asserted here.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { type FakeProvider, startFakeProvider } from '../../src/fake-provider/server.ts';
import { waitFor } from '../helpers/harness.ts';
import { startSluiceProcess } from '../helpers/process.ts';

// The issue's size; the process is killed 60 s after it starts (test/helpers/process.ts).
const TENANTS = 10_000;

/** `next` adds a model (m2) and a tenant (fresh): what a probe sees tells which config answered. */
function config(fake: FakeProvider, tenants: number, next = false): string {
  const lines = [
    'server: { host: 127.0.0.1, port: 0 }',
    'requestLog: { enabled: false }',
    'providers:',
    `  fake: { kind: openai, baseUrl: "${fake.baseUrl}" }`,
    'models:',
    '  m: { deployments: [{ provider: fake }] }',
    ...(next ? ['  m2: { deployments: [{ provider: fake }] }'] : []),
    'tenants:',
  ];
  for (let i = 0; i < tenants; i++) lines.push(`  t${i}: { keys: ["${hashKey(`sk-t${i}`)}"] }`);
  if (next) lines.push(`  fresh: { keys: ["${hashKey('sk-fresh')}"] }`);
  lines.push('limits:', '  tenants:');
  for (let i = 0; i < tenants; i++) {
    lines.push(`    t${i}: { requests: { limit: 100000, per: minute }, concurrency: { max: 8 } }`);
  }
  return `${lines.join('\n')}\n`;
}

describe('reloading a config of 10,000 tenants', () => {
  let fake: FakeProvider;
  let dir: string;
  before(async () => {
    fake = await startFakeProvider({ port: 0 });
    dir = await mkdtemp(join(tmpdir(), 'sluice-reload-scale-'));
  });
  after(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps answering while it loads, finishes the requests in flight, then applies it', async () => {
    const file = join(dir, 'big.yaml');
    await writeFile(file, config(fake, TENANTS));
    const p = await startSluiceProcess(['--config', file]);
    const agent = new Agent({ connections: 8 });
    const chat = async (key: string) => {
      const res = await request(`${p.url}/v1/chat/completions`, {
        method: 'POST',
        dispatcher: agent,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      });
      await res.body.dump();
      return res.statusCode;
    };
    const modelIds = async (key: string) => {
      const res = await request(`${p.url}/v1/models`, {
        dispatcher: agent,
        headers: { authorization: `Bearer ${key}` },
      });
      const body = (await res.body.json()) as { data: Array<{ id: string }> };
      return body.data.map((m) => m.id);
    };
    try {
      assert.equal(await chat('sk-t9999'), 200);
      assert.equal(await chat('sk-fresh'), 401, 'not a tenant yet');

      await writeFile(file, config(fake, TENANTS, true));
      p.kill('SIGHUP');
      const reloaded = () => p.logs.some((l) => l.msg === 'config reloaded');

      // Requests from old tenants, four at a time, until the reload is applied (bounded in count).
      const statuses = new Map<number, number>();
      const clients = Array.from({ length: 4 }, async (_, c) => {
        for (let i = 0; i < 2_000 && !reloaded(); i++) {
          const status = await chat(`sk-t${(c * 2_500 + i) % TENANTS}`);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      });
      // And the model list, one request after another: each answer without m2 came from the old
      // config while the new one was loading. A reload that blocked the event loop (as parsing
      // on the main thread did) would let none through until it was applied.
      let answeredWhileLoading = 0;
      for (let i = 0; i < 20_000; i++) {
        const models = await modelIds('sk-t1');
        if (models.includes('m2')) break;
        answeredWhileLoading++;
      }
      await Promise.all(clients);
      await waitFor(reloaded, 30_000, 'config reloaded');

      assert.equal(await chat('sk-fresh'), 200, 'the new tenant is admitted once the new config is applied');
      assert.deepEqual(
        [...statuses.keys()],
        [200],
        `every request during the reload succeeded: ${[...statuses]}`,
      );
      assert.ok(
        answeredWhileLoading >= 50,
        `the old config kept answering while the new one loaded (${answeredWhileLoading} answers)`,
      );
      assert.equal(await chat('sk-t0'), 200);
      assert.ok(!p.logs.some((l) => String(l.msg).startsWith('config rejected')));
    } finally {
      await agent.close();
      p.kill();
      await p.exited;
    }
  });

  it('coalesces a storm of reload signals into at most two loads', async () => {
    const file = join(dir, 'storm.yaml');
    await writeFile(file, config(fake, 2_000));
    const p = await startSluiceProcess(['--config', file]);
    try {
      // Apart, so the kernel does not merge them into one pending signal.
      for (let i = 0; i < 10; i++) {
        p.kill('SIGHUP');
        await new Promise((r) => setTimeout(r, 20));
      }
      await waitFor(() => p.logs.some((l) => l.msg === 'config reloaded'), 30_000, 'first reload');
      // Long enough for the ten loads an uncoalesced queue would run one after another to show.
      await new Promise((r) => setTimeout(r, 3_000));
      const loads = p.logs.filter((l) => l.msg === 'config reloaded').length;
      assert.ok(loads >= 1 && loads <= 2, `${loads} loads for 10 signals`);
    } finally {
      p.kill();
      await p.exited;
    }
  });
});
