import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import { jsonSchema } from '../../src/config/schema.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = join(ROOT, 'config/example.yaml');
const MAIN = join(ROOT, 'src/main.ts');
const text = readFileSync(EXAMPLE, 'utf8');

/**
 * Settings the example shows commented out, with their indentation: `server.metricsPort` set in
 * the example would move /metrics off the API port in every config copied from it.
 */
const COMMENTED_OUT: Array<[string, string]> = [['  ', 'metricsPort']];

/** The environment the example needs: OPENAI_API_KEY has no fallback, GROQ_API_KEY has one. */
const ENV = { OPENAI_API_KEY: 'sk-example-openai' };

function checkConfig(file: string, env: Record<string, string | undefined>) {
  const { GROQ_API_KEY: _groq, OPENAI_API_KEY: _openai, ...base } = process.env;
  return spawnSync(process.execPath, [MAIN, 'check-config', file], {
    cwd: ROOT,
    env: { ...base, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('config/example.yaml', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-example-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('points editors at the schema on its first line', () => {
    assert.equal(text.split('\n')[0], '# yaml-language-server: $schema=./schema.json');
  });

  it('validates with parseConfig', () => {
    const config = parseConfig(text, ENV);
    assert.equal(config.providers.openai?.apiKey, 'sk-example-openai');
    assert.equal(
      config.providers.groq?.apiKey,
      'not-configured',
      'the ${GROQ_API_KEY:-...} fallback applies',
    );
    assert.equal(parseConfig(text, { ...ENV, GROQ_API_KEY: 'gsk-1' }).providers.groq?.apiKey, 'gsk-1');
    assert.equal(config.passthrough?.provider, 'openai');
    assert.ok(
      Object.values(config.models).some((m) => m.deployments.length > 1),
      'shows weighted deployments',
    );
  });

  it('shows every setting', () => {
    // Walk the schema and the parsed example together: every property the schema allows must
    // appear somewhere in the example. A sub-schema used in several places (timeouts) counts as
    // shown when its properties appear across any of its uses. The settings in COMMENTED_OUT are
    // shown as comments (set, they would change what every copy of the file does): they count
    // when their commented line is there.
    let shown = text;
    for (const [indent, key] of COMMENTED_OUT) {
      const line = new RegExp(`^${indent}# ${key}: `, 'm');
      assert.match(text, line, `${key} is shown, commented out`);
      shown = shown.replace(line, `${indent}${key}: `);
    }
    const doc = parseYaml(shown) as unknown;
    const seen = new Map<string, { path: string; all: string[]; shown: Set<string> }>();
    const visit = (schema: Record<string, unknown>, values: unknown[], path: string) => {
      const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
      if (props) {
        const id = JSON.stringify(schema); // TypeBox copies a reused schema, so compare by content
        const entry = seen.get(id) ?? { path, all: Object.keys(props), shown: new Set<string>() };
        seen.set(id, entry);
        for (const [key, sub] of Object.entries(props)) {
          const present = values
            .filter((v): v is Record<string, unknown> => v !== null && typeof v === 'object')
            .filter((v) => key in v)
            .map((v) => v[key]);
          if (present.length === 0) continue;
          entry.shown.add(key);
          visit(sub, present, `${path}${key}.`);
        }
      }
      const items = schema.items as Record<string, unknown> | undefined;
      if (items)
        visit(
          items,
          values.flatMap((v) => (Array.isArray(v) ? v : [])),
          `${path}[].`,
        );
      const pattern = schema.patternProperties as Record<string, Record<string, unknown>> | undefined;
      if (pattern) {
        const children = values.flatMap((v) => (v && typeof v === 'object' ? Object.values(v) : []));
        for (const sub of Object.values(pattern)) visit(sub, children, `${path}*.`);
      }
    };
    visit(jsonSchema() as Record<string, unknown>, [doc], '');
    const missing = [...seen.values()].flatMap(({ path, all, shown }) =>
      // `$schema` is allowed as a key, but the yaml-language-server comment does its job.
      all.filter((key) => !shown.has(key) && key !== '$schema').map((key) => `${path}${key}`),
    );
    assert.deepEqual(missing, [], `config/example.yaml does not show: ${missing.join(', ')}`);
  });

  it('is valid against the published JSON schema as editors see it (no defaults filled in)', () => {
    const validate = new Ajv({ strict: false, allErrors: true }).compile(jsonSchema());
    const ok = validate(parseYaml(text));
    assert.ok(ok, validate.errors?.map((e) => `${e.instancePath} ${e.message}`).join('; '));
  });

  it('passes `sluice check-config` (exit 0)', () => {
    const r = checkConfig(EXAMPLE, ENV);
    assert.equal(r.status, 0, `stderr: ${r.stderr}`);
    assert.match(r.stdout, /example\.yaml: ok/);
  });

  it('its own "Validate with" line works as written, without OPENAI_API_KEY in the environment', () => {
    const line = text.split('\n').find((l) => l.startsWith('#   Validate with:'));
    assert.ok(line, 'the header has a "Validate with:" line');
    const command = line.slice('#   Validate with:'.length).trim();
    assert.match(command, /check-config config\/example\.yaml$/);
    const { GROQ_API_KEY: _groq, OPENAI_API_KEY: _openai, ...base } = process.env;
    // Run by a shell from the checkout, as a reader would paste it, with this test's Node first.
    const r = spawnSync('/bin/sh', ['-c', command], {
      cwd: ROOT,
      env: { ...base, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, `${command}\nstderr: ${r.stderr}`);
    assert.match(r.stdout, /config\/example\.yaml: ok/);
  });

  it('leaves server.metricsPort unset, so /metrics stays on the API port in a copy', () => {
    assert.equal(parseConfig(text, ENV).server.metricsPort, undefined);
  });

  it('fails `sluice check-config` without OPENAI_API_KEY, naming the variable and the field', () => {
    const r = checkConfig(EXAMPLE, {});
    assert.equal(r.status, 1, `stdout: ${r.stdout}`);
    assert.match(r.stderr, /providers\.openai\.apiKey/);
    assert.match(r.stderr, /OPENAI_API_KEY/);
  });

  it('fails `sluice check-config` (exit 1) on a broken copy, naming the field path', () => {
    const broken = text.replace('- provider: groq', '- provider: no-such-provider');
    assert.notEqual(broken, text);
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, broken);
    const r = checkConfig(file, ENV);
    assert.equal(r.status, 1, `stdout: ${r.stdout}`);
    assert.match(r.stderr, /models\.gpt-4o-mini\.deployments\[1\]\.provider/);
    assert.match(r.stderr, /unknown provider "no-such-provider"/);
  });
});
