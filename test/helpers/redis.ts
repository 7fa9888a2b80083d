/**
 * Real Redis for tests: the machine's server (SLUICE_TEST_REDIS_URL, default 127.0.0.1:6379), or a
 * private redis-server process a test can stop and restart. Outside CI a missing Redis skips the
 * test with a message; in CI (CI=true) it fails it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { freePort } from './ports.ts';

export const REDIS_URL = process.env.SLUICE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

let counter = 0;
/** A key prefix no other test (or run) uses. */
export function uniquePrefix(name: string): string {
  return `sluice-test:${name}:${process.pid}:${Date.now().toString(36)}:${counter++}`;
}

export async function ping(url: string, timeoutMs = 500): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(Number(port || 6379), hostname, () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/** True when Redis answers; otherwise skips the test (fails it in CI). */
export async function requireRedis(t: TestContext, url = REDIS_URL): Promise<boolean> {
  if (await ping(url)) return true;
  const message = `Redis is not reachable at ${url}`;
  if (process.env.CI === 'true') throw new Error(`CI: ${message}`);
  t.skip(`${message}; start it (see README) to run this test`);
  return false;
}

/** Deletes every key under a prefix. */
export async function deletePrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: it keeps nothing on disk). */
  start(): Promise<void>;
}

/** A private redis-server on a free loopback port, for tests that stop Redis under load. */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 5_000;
    while (!(await ping(url, 200))) {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };
  await start();
  return { url, port, start, stop };
}

/** True when the redis-server binary can be run here. */
export async function hasRedisServer(): Promise<boolean> {
  const child = spawn('redis-server', ['--version'], { stdio: 'ignore' });
  try {
    const [code] = await Promise.race([once(child, 'exit'), once(child, 'error').then(() => [1])]);
    return code === 0;
  } catch {
    return false;
  }
}
