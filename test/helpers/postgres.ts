/**
 * Real PostgreSQL and PgBouncer for tests: the machine's server (PG_URL, default 127.0.0.1:5432), a
 * throwaway database on it, a private postgres a test can stop and restart, or a PgBouncer in front of
 * any of them. Outside CI a missing server or binary skips the test with a message; in CI (CI=true) it
 * fails it. initdb, postgres and pgbouncer refuse to run as root, so when we are root they run as the
 * `postgres` OS user, in directories it owns.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { freePort } from './ports.ts';

/** The shared server tests use; trust auth, superuser `postgres`. */
export const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const PG_BIN = process.env.SLUICE_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const PGBOUNCER_PATHS = [
  '/usr/sbin/pgbouncer',
  '/usr/bin/pgbouncer',
  '/usr/local/bin/pgbouncer',
  '/opt/homebrew/bin/pgbouncer',
];
/** Log lines our own readiness probes cause. */
const PGBOUNCER_NOISE = /login attempt:|closing because: client (close request|unexpected eof)/;
const IS_ROOT = process.getuid?.() === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True when the shared Postgres answers; otherwise skips the test (fails it in CI). */
export async function requirePostgres(t: TestContext): Promise<boolean> {
  try {
    await query(PG_URL, 'SELECT 1', 2_000, true);
    return true;
  } catch (err) {
    const message = `Postgres is not reachable at ${PG_URL} (${(err as Error).message})`;
    if (process.env.CI === 'true') throw new Error(`CI: Postgres is required: ${message}`);
    t.skip(`${message}; start it or set PG_URL to run this test`);
    return false;
  }
}

/** A fresh database `sluice_t_<hex>` on the server of PG_URL; drop() ends its sessions and removes it. */
export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `sluice_t_${randomBytes(6).toString('hex')}`;
  await query(PG_URL, `CREATE DATABASE ${name}`);
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  const drop = async () => {
    await withClient(PG_URL, 5_000, async (client) => {
      await client.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [name],
      );
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    });
  };
  return { url: url.toString(), name, drop };
}

/** True when initdb, pg_ctl and postgres are installed (in SLUICE_TEST_PG_BIN, default PG 15's). */
export function hasPostgresBinaries(): boolean {
  return ['initdb', 'pg_ctl', 'postgres'].every((bin) => existsSync(join(PG_BIN, bin)));
}

/** True when a pgbouncer binary is installed. */
export function hasPgBouncer(): boolean {
  return pgBouncerPath() !== undefined;
}

/** True when pgbouncer and the Postgres binaries are installed; otherwise skips the test (fails it in CI). */
export async function requirePgBouncer(t: TestContext): Promise<boolean> {
  const missing = [
    ...(hasPgBouncer() ? [] : ['pgbouncer']),
    ...(hasPostgresBinaries() ? [] : [`PostgreSQL binaries in ${PG_BIN}`]),
  ];
  if (missing.length === 0) return true;
  const message = `${missing.join(' and ')} not installed`;
  if (process.env.CI === 'true') throw new Error(`CI: PgBouncer is required: ${message}`);
  t.skip(`${message}; install them (apt-get install postgresql pgbouncer) to run this test`);
  return false;
}

/** A private postgres a test can stop and restart; destroy() removes it and its data. */
export interface PrivatePostgres {
  /** Points at database `postgres`, user `postgres`, trust auth. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** pg_ctl stop -m mode (default fast); a no-op when it is not running. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops it (immediate) and removes its data directory. */
  destroy(): Promise<void>;
}

/** initdb + pg_ctl start of a throwaway cluster on a free loopback port (fsync off, log in the data dir). */
export async function startPostgresServer(): Promise<PrivatePostgres> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-pg-'));
  const logFile = join(dataDir, 'postgres.log');
  const pgCtl = join(PG_BIN, 'pg_ctl');
  let port = 0;
  let url = '';

  const isRunning = async () =>
    (await run(pgCtl, ['status', '-D', dataDir], { asPostgres: true })).code === 0;
  const start = async () => {
    const res = await run(pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '30'], {
      asPostgres: true,
      timeoutMs: 45_000,
    });
    if (res.code !== 0) {
      throw new Error(`pg_ctl start failed (exit ${res.code}): ${res.output}\n${await tail(logFile)}`);
    }
    await waitForQuery(url, 10_000, async () => `postgres on port ${port}:\n${await tail(logFile)}`);
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    const res = await run(pgCtl, ['stop', '-D', dataDir, '-m', mode, '-w', '-t', '30'], {
      asPostgres: true,
      timeoutMs: 45_000,
    });
    if (res.code !== 0 && (await isRunning())) {
      throw new Error(`pg_ctl stop -m ${mode} failed (exit ${res.code}): ${res.output}`);
    }
  };
  const forget = atExit(() => {
    killPostmaster(dataDir, 'SIGQUIT', 5_000);
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 });
  });
  const destroy = async () => {
    try {
      await stop('immediate');
    } catch {
      killPostmaster(dataDir, 'SIGQUIT', 5_000);
    }
    forget();
    await rm(dataDir, { recursive: true, force: true });
  };

  try {
    await ownByPostgres(dataDir);
    const initdb = await run(
      join(PG_BIN, 'initdb'),
      ['-D', dataDir, '--auth=trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'],
      { asPostgres: true },
    );
    if (initdb.code !== 0) throw new Error(`initdb failed (exit ${initdb.code}): ${initdb.output}`);
    port = await freePort();
    url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    await appendFile(
      join(dataDir, 'postgresql.conf'),
      [
        '',
        '# sluice test helper',
        `port = ${port}`,
        `listen_addresses = '127.0.0.1'`,
        `unix_socket_directories = '${dataDir.replaceAll("'", "''")}'`,
        'fsync = off',
        '',
      ].join('\n'),
    );
    await start();
  } catch (err) {
    await destroy().catch(() => {});
    throw err;
  }
  return { url, port, dataDir, stop, start, destroy };
}

/** A PgBouncer process in front of an upstream server. */
export interface PgBouncer {
  /** postgres://postgres@127.0.0.1:<port>/<the upstream URL's database>. */
  readonly url: string;
  readonly port: number;
  /** SIGINT, then SIGKILL if it has not exited after 3 s; removes its config and log. */
  stop(): Promise<void>;
}

/**
 * Starts pgbouncer (trust auth, any database name forwarded to the upstream host and port) on a free
 * loopback port and waits until a query goes through it.
 */
export async function startPgBouncer(opts: {
  upstreamUrl: string;
  poolSize: number;
  poolMode?: 'transaction' | 'session';
}): Promise<PgBouncer> {
  const bin = pgBouncerPath();
  if (!bin) throw new Error('pgbouncer is not installed');
  const upstream = new URL(opts.upstreamUrl);
  const database = decodeURIComponent(upstream.pathname.slice(1)) || 'postgres';
  const host = upstream.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'sluice-pgbouncer-'));
  const ini = join(dir, 'pgbouncer.ini');
  const userlist = join(dir, 'userlist.txt');
  const logFile = join(dir, 'pgbouncer.log');
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;

  await writeFile(userlist, '"postgres" ""\n');
  await writeFile(
    ini,
    [
      '[databases]',
      `* = host=${host} port=${upstream.port || 5432}`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${userlist}`,
      'admin_users = postgres',
      `pool_mode = ${opts.poolMode ?? 'transaction'}`,
      `default_pool_size = ${opts.poolSize}`,
      'max_client_conn = 500',
      `logfile = ${logFile}`,
      'ignore_startup_parameters = extra_float_digits,options',
      '',
    ].join('\n'),
  );
  await ownByPostgres(dir);

  const child: ChildProcess = spawn(bin, IS_ROOT ? ['-u', 'postgres', ini] : [ini], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr = (stderr + d).slice(-4_000);
  });
  // A test that forgets stop() must not hang the run: the exit hook kills it instead.
  child.unref();
  (child.stderr as unknown as { unref(): void }).unref();
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      stderr += `\n${err.message}`;
      resolve();
    });
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const forget = atExit(() => {
    if (running()) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const stop = async () => {
    if (running()) {
      child.ref(); // keep the event loop alive until it has exited
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    }
    forget();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await waitForQuery(
      url,
      10_000,
      async () =>
        `pgbouncer on port ${port}:\n${await tail(logFile, 3_000, PGBOUNCER_NOISE)}${running() ? '' : `\nstderr: ${stderr}`}`,
      () => !running(),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, stop };
}

function pgBouncerPath(): string | undefined {
  return PGBOUNCER_PATHS.find((p) => existsSync(p));
}

async function withClient<T>(
  url: string,
  timeoutMs: number,
  fn: (client: pg.Client) => Promise<T>,
  queryTimeoutMs = 30_000,
) {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: queryTimeoutMs,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Connects (within timeoutMs) and runs one statement (within 30 s, or timeoutMs when probe). */
async function query(url: string, sql: string, timeoutMs = 5_000, probe = false): Promise<void> {
  await withClient(url, timeoutMs, (client) => client.query(sql), probe ? timeoutMs : undefined);
}

/** Retries `SELECT 1` until it works; on timeout (or when gaveUp() says so) throws with describe(). */
async function waitForQuery(
  url: string,
  timeoutMs: number,
  describe: () => Promise<string>,
  gaveUp: () => boolean = () => false,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await query(url, 'SELECT 1', 1_000, true);
      return;
    } catch (err) {
      if (gaveUp() || Date.now() > deadline) {
        const why = gaveUp() ? 'exited' : `was not ready after ${timeoutMs} ms`;
        throw new Error(`${await describe()}\n(${why}; last error: ${(err as Error).message})`);
      }
    }
    await sleep(50);
  }
}

interface RunResult {
  code: number | null;
  output: string;
}

/** Runs a command (as the postgres OS user when we are root and asPostgres is set), bounded in time. */
async function run(
  cmd: string,
  args: string[],
  { asPostgres = false, timeoutMs = 60_000 }: { asPostgres?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  const [file, argv] =
    asPostgres && IS_ROOT ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, output };
  } finally {
    clearTimeout(timer);
  }
}

async function ownByPostgres(dir: string): Promise<void> {
  if (!IS_ROOT) return;
  const res = await run('chown', ['-R', 'postgres:', dir]);
  if (res.code !== 0) throw new Error(`chown postgres ${dir} failed: ${res.output}`);
}

/** The end of a log file, without lines matching `noise`. */
async function tail(file: string, chars = 3_000, noise?: RegExp): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    const kept = noise ? text.split('\n').filter((line) => !noise.test(line)) : [text];
    return kept.join('\n').slice(-chars);
  } catch {
    return `(no log at ${file})`;
  }
}

/** Signals the cluster's postmaster; with waitMs, blocks (synchronously, for exit hooks) until it is gone. */
function killPostmaster(dataDir: string, signal: NodeJS.Signals, waitMs = 0): void {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!(pid > 0)) return;
    process.kill(pid, signal);
  } catch {
    return; // not running
  }
  const deadline = Date.now() + waitMs;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < deadline && isAlive(pid)) Atomics.wait(cell, 0, 0, 20);
}

/** False once the process is gone or a zombie (an init that reaps slowly must not make us wait). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no procfs: trust kill(pid, 0)
  }
}

const exitHooks = new Set<() => void>();
let exitHooked = false;
/** Runs fn (synchronously) if the process exits first; returns a function that cancels it. */
function atExit(fn: () => void): () => void {
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', runExitHooks);
  }
  exitHooks.add(fn);
  return () => {
    exitHooks.delete(fn);
  };
}
function runExitHooks(): void {
  for (const fn of exitHooks) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
  exitHooks.clear();
}
