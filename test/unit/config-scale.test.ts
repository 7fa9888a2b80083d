/**
 * Config loading at scale: 10,000 tenants load (linearly: yaml's quadratic duplicate-key check is
 * replaced by our own), a key written twice is still refused with its path and line, and the
 * pieces that move a config off the event loop (loader thread, slices, work in turns) keep it whole.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashKey } from '../../src/auth/keys.ts';
import { eachInTurns } from '../../src/config/in-turns.ts';
import { ConfigError, loadConfigFile, parseConfig, validateConfig } from '../../src/config/load.ts';
import { loadConfigInThread } from '../../src/config/load-thread.ts';
import { rebuildConfig, sliceConfig } from '../../src/config/slices.ts';
import { compileRuntime, compileRuntimeInTurns } from '../../src/runtime.ts';

const ENV = { PROVIDER_KEY: 'sk-upstream' };

/** A config shaped like the issue's: every tenant with a key, a request limit and a concurrency cap. */
function bigConfig(tenants: number, extraTenant = ''): string {
  const lines = [
    'providers:',
    '  up: { kind: openai, baseUrl: "https://api.example.com/v1", apiKey: "${PROVIDER_KEY}" }',
    'models:',
    '  m: { deployments: [{ provider: up }] }',
    'tenants:',
  ];
  for (let i = 0; i < tenants; i++) lines.push(`  t${i}: { keys: ["${hashKey(`sk-t${i}`)}"] }`);
  if (extraTenant) lines.push(extraTenant);
  lines.push('limits:', '  tenants:');
  for (let i = 0; i < tenants; i++) {
    lines.push(`    t${i}: { requests: { limit: ${100 + i}, per: minute }, concurrency: { max: 4 } }`);
  }
  return `${lines.join('\n')}\n`;
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail('config was accepted');
}

const SMALL = `
providers:
  up: { kind: openai, baseUrl: "https://api.example.com/v1" }
models:
  m: { deployments: [{ provider: up }] }
tenants:
  acme: { keys: ["${hashKey('sk-acme')}"] }
`;

describe('config loading at scale', () => {
  it('loads 10,000 tenants with their limits, and their keys find them', () => {
    const config = parseConfig(bigConfig(10_000), ENV);
    assert.equal(Object.keys(config.tenants).length, 10_000);
    assert.equal(Object.keys(config.limits.tenants!).length, 10_000);
    assert.deepEqual(config.limits.tenants!.t9999, {
      requests: { limit: 10_099, per: 'minute', shadow: false },
      concurrency: { max: 4, shadow: false },
    });
    assert.equal(config.providers.up!.apiKey, 'sk-upstream');
    assert.ok(Object.isFrozen(config.tenants.t42) && Object.isFrozen(config.limits.tenants!.t42!.requests));
    const runtime = compileRuntime(config);
    assert.equal(runtime.tenants.lookup('sk-t7321')?.name, 't7321');
    assert.equal(runtime.tenants.lookup('sk-nobody'), undefined);
  });

  it('refuses a tenant written twice among 10,000, naming it and both lines', () => {
    const text = bigConfig(10_000, `  t5000: { keys: ["${hashKey('sk-again')}"] }`);
    const err = errorOf(() => parseConfig(text, ENV));
    // Line 6 is t0, so t5000 is first on line 5006; the second one follows the 10,000 tenants.
    assert.equal(err.path, 'tenants.t5000');
    assert.equal(err.message, 'tenants.t5000: duplicate key at line 10006, column 3 (first at line 5006)');
  });

  const duplicates: Array<[string, string, string, RegExp]> = [
    [
      'a top-level section',
      `${SMALL}tenants:\n  other: { keys: ["${hashKey('x')}"] }\n`,
      'tenants',
      /line 8, column 1 \(first at line 6\)/,
    ],
    [
      'a key inside a flow mapping',
      SMALL.replace('{ kind: openai,', '{ kind: openai, kind: fake,'),
      'providers.up.kind',
      /line 3, column 23 \(first at line 3\)/,
    ],
    [
      'a key inside a list item',
      SMALL.replace('[{ provider: up }]', '[{ provider: up, weight: 1, weight: 2 }]'),
      'models.m.deployments[0].weight',
      /duplicate key at line 5/,
    ],
    [
      '1 and "1", which are the same property once parsed',
      `${SMALL}limits:\n  tenants:\n    acme: {}\n    1: {}\n    "1": {}\n`,
      'limits.tenants["1"]',
      /line 12, column 5 \(first at line 11\)/,
    ],
    [
      'an alias of a key already given',
      `${SMALL}limits:\n  tenants:\n    &a acme: {}\n    *a : {}\n`,
      'limits.tenants.acme',
      /line 11, column 5 \(first at line 10\)/,
    ],
  ];
  for (const [name, text, path, where] of duplicates) {
    it(`refuses a duplicate key: ${name}`, () => {
      const err = errorOf(() => parseConfig(text, ENV));
      assert.equal(err.path, path, err.message);
      assert.match(err.message, where);
    });
  }

  it('still reads anchors and aliases, and bounds their expansion', () => {
    const text = SMALL.replace('acme: { keys:', 'acme: &t { keys:').concat('  other: *t\n');
    assert.equal(
      errorOf(() => parseConfig(text, ENV)).path,
      'tenants.other.keys[0]',
      'same key, other tenant',
    );
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (const [i, name] of ['b', 'c', 'd', 'e'].entries()) {
      const prev = 'abcd'[i];
      bomb.push(
        `${name}: &${name} [*${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}]`,
      );
    }
    assert.equal(
      errorOf(() => parseConfig(bomb.join('\n'), ENV)).message,
      'invalid YAML: Excessive alias count: aliases would expand the config from 53 to 52165 nodes',
    );
  });

  it('refuses more than 100 aliases, even of a number', () => {
    const limits = (n: number) =>
      `limits:\n  tenants:\n    acme: { requests: { limit: &n 5, per: minute } }\n${Array.from(
        { length: n },
        (_, i) => `    u${i}: { requests: { limit: *n, per: minute } }`,
      ).join('\n')}\n`;
    // 100 are read (and then refused for naming unknown tenants, so the aliases did resolve).
    assert.equal(errorOf(() => parseConfig(`${SMALL}${limits(100)}`, ENV)).path, 'limits.tenants.u0');
    const err = errorOf(() => parseConfig(`${SMALL}${limits(101)}`, ENV));
    assert.equal(err.message, 'invalid YAML at line 111, column 32: more than 100 aliases');
  });

  it('refuses an alias inside the node it names (a cycle every later walk would follow)', () => {
    const err = errorOf(() => parseConfig(`${SMALL}x: &c { y: [*c] }\n`, ENV));
    assert.equal(err.message, 'invalid YAML at line 8, column 13: *c refers to a node that contains it');
  });

  it('takes a merge key (<<) as an ordinary key, which the schema refuses, as before', () => {
    const text = SMALL.replace('acme: {', 'acme: &t {').concat(
      `  other: { <<: *t, keys: ["${hashKey('sk-other')}"] }\n`,
    );
    const err = errorOf(() => parseConfig(text, ENV));
    assert.equal(err.path, 'tenants.other["<<"]', err.message);
  });

  it('reports invalid YAML with its line and column, and an empty file as no mapping', () => {
    assert.equal(
      errorOf(() => parseConfig('providers: [unclosed', ENV)).message,
      'invalid YAML at line 1, column 21: unexpected end of the stream within a flow collection',
    );
    assert.match(
      errorOf(() => parseConfig(`${SMALL}  x: *nope\n`, ENV)).message,
      /^invalid YAML at line 8, column 7: /,
    );
    assert.equal(
      errorOf(() => parseConfig(`${SMALL}---\na: 1\n`, ENV)).message,
      'invalid YAML: the file holds more than one document',
    );
    for (const empty of ['', '# nothing here\n']) {
      assert.equal(
        errorOf(() => parseConfig(empty, ENV)).message,
        'the config must be a YAML mapping with providers, models and tenants',
      );
    }
  });

  it('keeps ~ and null as the same key, and reads quoted, numeric and tagged keys', () => {
    const err = errorOf(() => parseConfig(`${SMALL}limits:\n  tenants:\n    ~: {}\n    null: {}\n`, ENV));
    assert.equal(err.path, 'limits.tenants.null');
    assert.match(err.message, /line 11, column 5 \(first at line 10\)/);
    const ok = parseConfig(
      `${SMALL}limits:\n  tenants:\n    'acme': { requests: { limit: !!int "7", per: minute } }\n`,
      ENV,
    );
    assert.equal(ok.limits.tenants!.acme!.requests!.limit, 7);
    // A key that becomes the same only through its tag is still refused, with js-yaml's line.
    const tagged = errorOf(() =>
      parseConfig(`${SMALL}limits:\n  tenants:\n    1: {}\n    !!int 0x1: {}\n`, ENV),
    );
    assert.equal(tagged.message, 'invalid YAML at line 11, column 5: duplicated mapping key');
  });

  it('keeps a model named __proto__ as a model, through interpolation, slices and freezing', async () => {
    const text = SMALL.replace('  m: {', '  __proto__: { deployments: [{ provider: up }] }\n  m: {');
    const config = parseConfig(text, ENV);
    assert.deepEqual(Object.keys(config.models).sort(), ['__proto__', 'm']);
    assert.equal(Object.getPrototypeOf(config.models), Object.prototype);
    const sliced = sliceConfig(structuredClone(config), 1);
    const rebuilt = await rebuildConfig<typeof config>(structuredClone(sliced));
    assert.deepEqual(Object.keys(rebuilt.models).sort(), ['__proto__', 'm']);
    assert.equal(Object.getPrototypeOf(rebuilt.models), Object.prototype);
  });

  it('sends big maps in slices and rebuilds the same config, deep-frozen', async () => {
    const config = parseConfig(bigConfig(2_500), ENV);
    const sliced = sliceConfig(structuredClone(config), 1_000);
    assert.deepEqual(
      sliced.maps.map((m) => [m.path.join('.'), m.slices]),
      [
        ['tenants', 3],
        ['limits.tenants', 3],
      ],
    );
    assert.equal(sliced.slices.length, 6);
    const rebuilt = await rebuildConfig<typeof config>(structuredClone(sliced));
    assert.deepEqual(rebuilt, config);
    assert.ok(Object.isFrozen(rebuilt.tenants) && Object.isFrozen(rebuilt.tenants.t2499!.keys));
    assert.ok(Object.isFrozen(rebuilt.limits.tenants) && Object.isFrozen(rebuilt.server));
  });

  it('works through many items a slice per event-loop turn', async () => {
    const seen: number[] = [];
    let doneWhenOtherTaskRan = -1;
    setImmediate(() => {
      doneWhenOtherTaskRan = seen.length;
    });
    await eachInTurns(
      Array.from({ length: 2_500 }, (_, i) => i),
      (i) => seen.push(i),
      1_000,
    );
    assert.equal(seen.length, 2_500);
    assert.equal(doneWhenOtherTaskRan, 1_000, 'another task ran after the first slice');
  });

  it('compiles the same runtime in turns as at once', async () => {
    const config = parseConfig(bigConfig(2_500), ENV);
    const inTurns = await compileRuntimeInTurns(config);
    const atOnce = compileRuntime(config);
    for (const key of ['sk-t0', 'sk-t1000', 'sk-t2499', 'sk-none']) {
      assert.deepEqual(inTurns.tenants.lookup(key), atOnce.tenants.lookup(key));
    }
    assert.deepEqual([...inTurns.models.keys()], [...atOnce.models.keys()]);
  });
});

describe('loading in a worker thread', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-config-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('gives the same frozen config as loading on the main thread, with the env it was given', async () => {
    const file = join(dir, 'big.yaml');
    await writeFile(file, bigConfig(3_000));
    assert.equal(process.env.PROVIDER_KEY, undefined, 'the env is passed, not inherited');
    const inThread = await loadConfigInThread(file, ENV);
    assert.deepEqual(inThread, await loadConfigFile(file, ENV));
    assert.equal(inThread.providers.up!.apiKey, 'sk-upstream');
    assert.ok(Object.isFrozen(inThread) && Object.isFrozen(inThread.tenants.t2999));
  });

  it('reports a bad config as the same ConfigError: path and message', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, SMALL.replace('provider: up', 'provider: nowhere'));
    const err = await loadConfigInThread(file, ENV).then(
      () => assert.fail('accepted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConfigError);
    assert.equal(err.path, 'models.m.deployments[0].provider');
    assert.equal(err.message, 'models.m.deployments[0].provider: unknown provider "nowhere"');
    const missing = await loadConfigInThread(join(dir, 'absent.yaml'), ENV).catch((e: unknown) => e);
    assert.ok(missing instanceof ConfigError);
    assert.match(missing.message, /^cannot read config file .*absent\.yaml/);
  });

  it('refuses a missing ${ENV} secret, naming the field, like the main thread does', async () => {
    const file = join(dir, 'env.yaml');
    await writeFile(file, bigConfig(10));
    const err = await loadConfigInThread(file, {}).catch((e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.path, 'providers.up.apiKey');
    assert.equal(
      err.message,
      errorOf(() => validateConfig({ providers: { up: { apiKey: '${PROVIDER_KEY}' } } }, {})).message,
    );
  });
});
