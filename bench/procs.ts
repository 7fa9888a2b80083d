// Child processes for the bench: started pinned to one core with `taskset -c N node ...` (taskset
// execs node, so the child's pid is node's own), readiness by polling an HTTP path, CPU time and
// peak RSS read from /proc/<pid>, and a registry so every child is killed on exit, error or signal.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Clock ticks per second of utime/stime in /proc/<pid>/stat. */
export const CLK_TCK = readClkTck();

function readClkTck(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Last few KB of stderr, for error messages. */
  stderr(): string;
  readonly exited: Promise<number | null>;
  exitCode(): number | null | undefined;
}

const live = new Set<ChildProcess>();

/** Registers a child so killAllSync() kills it; returns the function that forgets it. */
export function track(child: ChildProcess): () => void {
  live.add(child);
  return () => live.delete(child);
}

/** Kills every child still running, at once (for exit paths that cannot wait). */
export function killAllSync(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
}

/**
 * `taskset -c <cpu> node <args>`; stdout goes to /dev/null (Sluice logs there), stderr is kept.
 */
export function spawnPinned(name: string, cpu: number, args: readonly string[], cwd: string): Proc {
  const child = spawn('taskset', ['-c', String(cpu), process.execPath, ...args], {
    cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
  live.add(child);
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    err = (err + d).slice(-4096);
  });
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (c) => {
      code = c;
      live.delete(child);
      resolve(c);
    });
    child.once('error', () => {
      code = null;
      live.delete(child);
      resolve(null);
    });
  });
  return { name, pid: child.pid, child, stderr: () => err, exited, exitCode: () => code };
}

/** Throws unless /proc/<pid>/exe is this node binary (i.e. taskset has exec'd node). */
export function assertIsNode(proc: Proc): void {
  const exe = readlinkSync(`/proc/${proc.pid}/exe`);
  if (exe !== realpathSync(process.execPath)) {
    throw new Error(`${proc.name}: pid ${proc.pid} runs ${exe}, not node`);
  }
}

/** Cores the process may run on, as the kernel reports them (e.g. "1"). */
export function cpusAllowed(pid: number): string {
  return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';
}

/** utime + stime of the whole process (all threads), in clock ticks. */
export function cpuTicks(pid: number): number {
  return procStat(pid).ticks;
}

/** CPU (utime + stime, clock ticks) and page faults of the whole process, from /proc/<pid>/stat. */
export function procStat(pid: number): { ticks: number; minorFaults: number; majorFaults: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): minflt is field 10, majflt 12, utime 14, stime 15.
  return {
    ticks: Number(fields[11]) + Number(fields[12]),
    minorFaults: Number(fields[7]),
    majorFaults: Number(fields[9]),
  };
}

/** Peak resident set size (VmHWM) in bytes. */
export function peakRssBytes(pid: number): number {
  const m = /VmHWM:\s*(\d+)\s*kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function probe(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false, headers: { connection: 'close' }, timeout: 1000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(0));
  });
}

/** Polls `url` (GET) until it answers 2xx, the process exits, or `timeoutMs` passes. */
export async function waitReady(proc: Proc, url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (proc.exitCode() !== undefined) {
      throw new Error(`${proc.name} exited (${proc.exitCode()}) before ready: ${proc.stderr()}`);
    }
    const status = await probe(url);
    if (status >= 200 && status < 300) return;
    await sleep(100);
  }
  throw new Error(`${proc.name} not ready at ${url} after ${timeoutMs} ms: ${proc.stderr()}`);
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(proc: Proc, graceMs = 5_000): Promise<void> {
  if (proc.exitCode() !== undefined) return;
  proc.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      proc.child.kill('SIGKILL');
      resolve();
    }, graceMs);
  });
  await Promise.race([proc.exited, killed]);
  clearTimeout(timer);
  await proc.exited;
}

/** Pins this process (all its threads) to `cpu`. Returns false when taskset refuses. */
export function pinSelf(cpu: number): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Busy clock ticks per core since boot (user+nice+system+irq+softirq+steal), from /proc/stat. */
export function coreBusyTicks(): number[] {
  const out: number[] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    out[Number(m[1])] = v[0]! + v[1]! + v[2]! + v[5]! + v[6]! + (v[7] ?? 0);
  }
  return out;
}

/** Runs a scenario bench's main: exit 0 when it resolves, print the stack and exit 1 when it throws. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    },
  );
}
