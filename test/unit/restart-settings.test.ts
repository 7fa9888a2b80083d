/**
 * One list of the `server` settings that need a restart (src/config/restart.ts): it covers the
 * schema, the reload warning uses it, and the docs that name those settings say the same.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.ts';
import {
  RELOAD_SERVER_SETTINGS,
  RESTART_SERVER_SETTINGS,
  serverChangesNeedingRestart,
} from '../../src/config/restart.ts';
import { jsonSchema } from '../../src/config/schema.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string) => readFileSync(`${ROOT}${file}`, 'utf8');
/** Text with its line breaks, list indentation and YAML comment marks folded into single spaces. */
const flat = (text: string) => text.replace(/\s*\n\s*(#\s*)?/g, ' ');
/** The names in `server.<name>` references of a piece of text, sorted. */
const serverNames = (text: string) => [...text.matchAll(/`server\.(\w+)`/g)].map((m) => m[1]!).sort();
const restart = [...RESTART_SERVER_SETTINGS].sort();
const reload = [...RELOAD_SERVER_SETTINGS].sort();

const BASE = `
providers: { p: { kind: openai, baseUrl: "http://127.0.0.1:9/v1" } }
models: { m: { deployments: [{ provider: p }] } }
tenants: { t: { keys: ["sha256:${'0'.repeat(64)}"] } }
`;

describe('server settings that need a restart', () => {
  it('every server setting of the schema is in exactly one list', () => {
    const schema = jsonSchema() as unknown as { properties: { server: { properties: object } } };
    const server = schema.properties.server;
    const all = Object.keys(server.properties).sort();
    assert.deepEqual([...restart, ...reload].sort(), all);
    assert.deepEqual(
      restart.filter((name) => (reload as string[]).includes(name)),
      [],
    );
  });

  it('names only the restart settings that changed', () => {
    const before = parseConfig(`server: { port: 8080 }${BASE}`, {}).server;
    const same = parseConfig(
      `server: { port: 8080, drainTimeoutMs: 1000, trustedProxies: [10.0.0.0/8] }${BASE}`,
      {},
    );
    assert.deepEqual(serverChangesNeedingRestart(before, same.server), []);
    const moved = parseConfig(`server: { port: 8081, maxJsonDepth: 64, metricsPort: 9464 }${BASE}`, {});
    assert.deepEqual(serverChangesNeedingRestart(before, moved.server), [
      'server.port',
      'server.maxJsonDepth',
      'server.metricsPort',
    ]);
  });

  it('docs/config.md says the same, in its Reloading section and its server table', () => {
    const doc = read('docs/config.md');
    const reloading = flat(doc.slice(doc.indexOf('## Reloading')));
    const restartSentence = /These `server` settings take effect only on restart: (.*?)\. /.exec(reloading);
    assert.ok(restartSentence, 'the Reloading section lists the restart settings');
    assert.deepEqual(serverNames(restartSentence[1]!), restart);
    const reloadSentence = /The other `server` settings follow a reload: (.*?) \(/.exec(reloading);
    assert.ok(reloadSentence, 'the Reloading section lists the settings that follow a reload');
    assert.deepEqual(serverNames(reloadSentence[1]!), reload);
    // The server table marks each restart setting, and no other.
    const table = doc.slice(doc.indexOf('### `server`'), doc.indexOf('### `logging`'));
    const marked = [...table.matchAll(/^\| `(\w+)`.*Restart to change\./gm)].map((m) => m[1]!).sort();
    assert.deepEqual(marked, restart);
  });

  it('README.md and config/example.yaml say the same', () => {
    const readme = flat(read('README.md'));
    const sentence = /These `server` settings take effect only on restart: (.*?);/.exec(readme);
    assert.ok(sentence, 'README names the restart settings');
    assert.deepEqual(serverNames(sentence[1]!), restart);
    const example = flat(read('config/example.yaml'));
    const comment = /Changes to (.*?) take effect on restart/.exec(example);
    assert.ok(comment, 'the example names the restart settings above `server:`');
    assert.deepEqual(comment[1]!.split(/, | and /).sort(), restart);
  });
});
