/**
 * docs/runbook.md stays true: every alert's section says how to make it fire on purpose (a Drill),
 * and every log line it quotes is a message the code really logs.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;
const runbook = readFileSync(join(root, 'docs/runbook.md'), 'utf8');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

test('every alert has a runbook section with a Drill', () => {
  const rules = readFileSync(join(root, 'deploy/prometheus/alerts.yml'), 'utf8');
  const names = [...rules.matchAll(/alert: (\w+)/g)].map((m) => m[1]!);
  assert.ok(names.length > 0);
  for (const name of names) {
    const start = runbook.indexOf(`## ${name}\n`);
    assert.ok(start >= 0, `a section for ${name}`);
    const next = runbook.indexOf('\n## ', start + 1);
    const section = runbook.slice(start, next === -1 ? undefined : next);
    assert.match(section, /\*\*Drill\*\*: /, `${name} has a Drill`);
  }
});

test('the log lines the runbook quotes are the ones the code logs', () => {
  const code = sources(join(root, 'src'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  // A quoted message: `<component>: <words>` where the component is one the code logs under.
  const quoted = [...runbook.matchAll(/`((?:request log|limits|worker shedder): [^`]+)`/g)].map((m) => m[1]!);
  assert.ok(quoted.length >= 8, `found ${quoted.length} quoted lines`);
  for (const line of quoted) assert.ok(code.includes(`'${line}'`), `src/ logs "${line}"`);
  assert.ok(quoted.includes('request log: database refused a row; dropped'));
});
