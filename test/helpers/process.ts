/** Runs `node src/main.ts` as a child process, in a working directory of its own, and reads its JSON log lines. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface SluiceProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly logs: Array<Record<string, unknown>>;
  readonly stderr: () => string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;

/** `node src/main.ts ...args` in a working directory of its own (./data is relative to it), removed when it exits. */
function spawnSluice(args: string[], env: Record<string, string>): ChildProcess {
  const cwd = mkdtempSync(join(tmpdir(), 'sluice-proc-'));
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: 'pipe',
  });
  child.once('exit', () => rmSync(cwd, { recursive: true, force: true }));
  return child;
}

export function runSluiceCommand(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnSluice(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return once(child, 'exit').then(([code]) => {
    clearTimeout(timer);
    return { code: code as number | null, stdout, stderr };
  });
}

export async function startSluiceProcess(
  args: string[],
  env: Record<string, string> = {},
): Promise<SluiceProcess> {
  const child = spawnSluice(args, env);
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  // Never outlive the test run.
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  void exited.then(() => clearTimeout(guard));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'sluice listening') resolve(String(entry.url));
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => reject(new Error(`sluice exited with ${code} before listening: ${stderr}`)));
  });
  return { child, url, logs, stderr: () => stderr, exited, kill: (signal = 'SIGTERM') => child.kill(signal) };
}
