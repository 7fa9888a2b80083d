/**
 * promtool (Debian package `prometheus`) for checks of the exposition and the alert rules. Outside
 * CI a missing binary skips the test with a message; in CI (CI=true) it fails it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';

const PATHS = ['/usr/bin/promtool', '/usr/local/bin/promtool'];

export function promtoolPath(): string | undefined {
  return PATHS.find((p) => existsSync(p));
}

export function requirePromtool(t: TestContext): string | undefined {
  const path = promtoolPath();
  if (path) return path;
  if (process.env.CI === 'true') throw new Error('CI: promtool is required (Debian package prometheus)');
  t.skip('promtool not installed (Debian package prometheus)');
  return undefined;
}

/** Runs promtool; resolves with its exit code and output (never rejects on a non-zero exit). */
export function promtool(
  bin: string,
  args: string[],
  input?: string,
  cwd?: string,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(bin, args, { cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, output: `${stdout}${stderr}` });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Sluice metric names a PromQL text refers to, histogram suffixes removed. */
export function metricNames(promql: string): string[] {
  return [
    ...new Set(
      [...promql.matchAll(/\bsluice_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, '')),
    ),
  ];
}
