/**
 * The commands the docs tell operators to run are forms that work as written: through the launcher
 * (bin/sluice.mjs checks the Node.js version and says what it needs), never `node src/main.ts`
 * (ERR_UNKNOWN_FILE_EXTENSION and no hint before Node 22.18) and never `npx sluice` (outside the
 * checkout npx fetches whatever package of that name the registry has).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  'config/example.yaml',
  'Dockerfile',
  'docker-compose.yml',
];

/** Forms that fail on an old Node without a hint, or that may run a stranger's package. */
const FORBIDDEN: Array<[RegExp, string]> = [
  [/node (\.\/)?src\/main\.ts/, 'node src/main.ts (use node bin/sluice.mjs)'],
  [/npx (--yes |-y )?sluice\b/, 'npx sluice (may fetch a registry package)'],
  [/npm exec (-- )?sluice\b/, 'npm exec sluice (may fetch a registry package)'],
  [
    /`sluice (migrate|check-config|hash-key|print-config|start)\b/,
    'a bare `sluice <command>` (no such program on PATH)',
  ],
];

/** What may follow `node bin/sluice.mjs`: the commands of src/main.ts, its options, a placeholder. */
const LAUNCHER_ARGS = new Set([
  'check-config',
  'hash-key',
  'migrate',
  'print-config',
  'start',
  '--config',
  '-c',
  '--port',
  '-p',
  '--help',
  '<command>',
]);

describe('documented commands', () => {
  it('use the launcher, not node src/main.ts, npx sluice or a bare sluice', () => {
    const found: string[] = [];
    for (const file of DOCS) {
      readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          for (const [pattern, what] of FORBIDDEN)
            if (pattern.test(line)) found.push(`${file}:${i + 1}: ${what}: ${line.trim()}`);
        });
    }
    assert.deepEqual(found, []);
  });

  it('give the launcher a command it knows', () => {
    const unknown: string[] = [];
    let uses = 0;
    for (const file of DOCS) {
      for (const m of readFileSync(join(ROOT, file), 'utf8').matchAll(
        /node bin\/sluice\.mjs\s+([^\s`"')\],]+)/g,
      )) {
        uses++;
        const arg = m[1]!;
        if (!LAUNCHER_ARGS.has(arg)) unknown.push(`${file}: node bin/sluice.mjs ${arg}`);
      }
    }
    assert.ok(uses > 5, 'the docs show the launcher');
    assert.deepEqual(unknown, []);
  });

  it('the image has the launcher and starts through it', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^COPY bin \.\/bin$/m);
    assert.match(dockerfile, /^CMD \["node", "bin\/sluice\.mjs"/m);
  });

  it('package.json runs the launcher for npm start and npm run sluice, and npm ci checks engines', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
      engines: { node: string };
    };
    assert.equal(pkg.scripts.start, 'node bin/sluice.mjs');
    assert.equal(pkg.scripts.sluice, 'node bin/sluice.mjs');
    assert.match(readFileSync(join(ROOT, '.npmrc'), 'utf8'), /^engine-strict=true$/m);
    assert.equal(readFileSync(join(ROOT, '.nvmrc'), 'utf8').trim(), '24');
    // The launcher's own bound and the engines field name the same version.
    const launcher = readFileSync(join(ROOT, 'bin/sluice.mjs'), 'utf8');
    assert.equal(pkg.engines.node, '>=22.18.0');
    assert.match(launcher, /major === 22 && minor < 18/);
  });
});
