// What every bench tool shares: the workload constants, the Sluice config, and starting the fake
// provider and the proxies pinned to their cores.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashKey } from '../src/auth/keys.ts';
import type { Target } from './measure.ts';
import { assertIsNode, cpusAllowed, freePort, type Proc, spawnPinned, stop, waitReady } from './procs.ts';

export const ROOT = new URL('..', import.meta.url).pathname;
export const CONNECTIONS = 50;
export const RATE = 500;
export const STREAMS = { concurrency: 200, rounds: 5, chunks: 20, chunkGapMs: 10 };
export const KEY = 'sk-bench';
export const MODEL = 'bench-model';
export const PROVIDER_CORE = 0;
export const PROXY_CORE = 1;

export const HEADERS = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` };
export const CHAT_BODY = JSON.stringify({
  model: MODEL,
  messages: [{ role: 'user', content: 'Hello, benchmark' }],
});
export const STREAM_BODY = JSON.stringify({
  model: MODEL,
  stream: true,
  messages: [{ role: 'user', content: 'Hello, benchmark' }],
});

/**
 * `BENCH_FEATURES=all`: what a real deployment turns on, for the "all features" column. Redis
 * limits (tenant requests, tokens and concurrency, the fleet lease), the request log on Postgres
 * (`BENCH_DATABASE_URL`, default the local `test` database), metrics, info logging. Every limit is
 * far above the load, so nothing is refused and every layer still does its work.
 */
export const ALL_FEATURES = process.env.BENCH_FEATURES === 'all';

/**
 * The bench config. By default `requestLog` is off where the source knows the section (older
 * commits would refuse the key): the core bench measures the proxy; bench/requestlog.ts measures
 * the log. With ALL_FEATURES every layer is on.
 */
export function sluiceConfig(port: number, upstreamPort: number, dir: string = ROOT): string {
  const lines = [
    `server: { host: 127.0.0.1, port: ${port}, drainTimeoutMs: 2000 }`,
    'logging: { level: info }',
    'providers:',
    `  fake: { kind: openai, baseUrl: "http://127.0.0.1:${upstreamPort}/v1", connections: 256 }`,
    'models:',
    `  ${MODEL}: { deployments: [{ provider: fake }] }`,
    'tenants:',
    `  bench: { keys: ["${hashKey(KEY)}"] }`,
  ];
  if (!ALL_FEATURES) {
    if (existsSync(join(dir, 'src', 'requestlog'))) lines.push('requestLog: { enabled: false }');
    return `${lines.join('\n')}\n`;
  }
  const redis = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  const database = process.env.BENCH_DATABASE_URL || 'postgres://127.0.0.1:5432/test';
  const huge = 'limit: 1000000000000, per: second';
  lines.push(
    'limits:',
    `  redis: { url: "${redis}", keyPrefix: "sluice-bench-${process.pid}" }`,
    `  fleet: { models: { ${MODEL}: { maxInFlight: 1000000 } } }`,
    '  tenants:',
    `    bench: { requests: { ${huge} }, tokens: { ${huge} }, concurrency: { max: 1000000 } }`,
    `requestLog: { url: "${database}" }`,
    '',
  );
  return lines.join('\n');
}

function git(...args: string[]): Buffer {
  return execFileSync('git', ['-C', ROOT, ...args], {
    stdio: ['ignore', 'pipe', 'ignore'],
    maxBuffer: 256 << 20,
  });
}

/** The Sluice source to run: the working tree, or `ref` exported to `tmp`; and a line saying which. */
export function sluiceSource(ref: string | undefined, tmp: string): { dir: string; source: string } {
  if (ref === undefined) {
    let state = 'not a git checkout';
    try {
      const commit = git('rev-parse', '--short=12', 'HEAD').toString().trim();
      const dirty = git('status', '--porcelain', '--', 'src').toString() !== '';
      state = `HEAD ${commit}${dirty ? ' + uncommitted changes in src/' : ', src/ clean'}`;
    } catch {
      // keep 'not a git checkout'
    }
    return { dir: ROOT, source: `working tree (${state})` };
  }
  const commit = git('rev-parse', '--verify', `${ref}^{commit}`).toString().trim();
  const dir = join(tmp, 'sluice-src');
  mkdirSync(dir);
  execFileSync('tar', ['-x', '-C', dir], { input: git('archive', commit, 'src', 'package.json') });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return { dir, source: `git ${ref} = ${commit.slice(0, 12)} (exported with git archive)` };
}

export async function startPinned(
  name: string,
  core: number,
  args: string[],
  readyUrl: string,
): Promise<Proc> {
  const proc = spawnPinned(name, core, args, ROOT);
  await waitReady(proc, readyUrl);
  assertIsNode(proc);
  const allowed = cpusAllowed(proc.pid);
  if (allowed !== String(core)) throw new Error(`${name}: runs on cores ${allowed}, expected ${core}`);
  return proc;
}

/** The fake provider on `core`, with the stream behaviour as CLI defaults (they apply to every target). */
export async function startFake(core: number): Promise<{ proc: Proc; origin: string; port: number }> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const args = ['src/fake-provider/main.ts', '--host', '127.0.0.1', '--port', String(port)];
  args.push('--chunks', String(STREAMS.chunks), '--chunk-gap-ms', String(STREAMS.chunkGapMs));
  const proc = await startPinned('fake provider', core, args, `${origin}/v1/models`);
  return { proc, origin, port };
}

export async function startBare(
  core: number,
  upstream: string,
  nodeArgs: string[] = [],
): Promise<{ proc: Proc; origin: string }> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const args = [...nodeArgs, 'loadtest/bare-proxy.ts', '--port', String(port), '--upstream', upstream];
  return { proc: await startPinned('bare proxy', core, args, `${origin}/v1/models`), origin };
}

/** Sluice from `dir` (a checkout or an export), its config written into `tmp`. */
export async function startSluice(
  core: number,
  dir: string,
  tmp: string,
  upstreamPort: number,
  nodeArgs: string[] = [],
): Promise<{ proc: Proc; origin: string }> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const configPath = join(tmp, 'sluice.yaml');
  writeFileSync(configPath, sluiceConfig(port, upstreamPort, dir));
  const args = [...nodeArgs, join(dir, 'src', 'main.ts'), '--config', configPath];
  return { proc: await startPinned('sluice', core, args, `${origin}/healthz`), origin };
}

/**
 * Sluice (`node <args>`, listening on `port`) pinned to PROXY_CORE for the length of `fn`, which
 * gets the chat-completions target to measure; stopped afterwards, whatever `fn` did.
 */
export async function withPinnedSluice<T>(
  args: readonly string[],
  port: number,
  fakePid: number,
  fn: (target: Target) => Promise<T>,
): Promise<T> {
  const proc = spawnPinned('sluice', PROXY_CORE, args, ROOT);
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitReady(proc, `${origin}/healthz`);
    return await fn({ url: `${origin}/v1/chat/completions`, headers: HEADERS, procPid: proc.pid, fakePid });
  } finally {
    await stop(proc);
  }
}
