import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { queueCapacities } from '../../src/config/capacity.ts';
import { DEFAULTS } from '../../src/config/defaults.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';

const KEY = `sha256:${'a'.repeat(64)}`;
const BASE = `
providers:
  openai: { kind: openai, baseUrl: "https://api.openai.com/v1", apiKey: "\${OPENAI_KEY}" }
models:
  gpt-4.1:
    deployments: [{ provider: openai }]
tenants:
  acme: { keys: ["${KEY}"] }
`;
const ENV = { OPENAI_KEY: 'sk-1' };

function errorOf(text: string, env: Record<string, string> = ENV): ConfigError {
  try {
    parseConfig(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail('config was accepted');
}

describe('config loading', () => {
  it('fills defaults, interpolates secrets and freezes the result', () => {
    const c = parseConfig(BASE, ENV);
    assert.equal(c.providers.openai!.apiKey, 'sk-1');
    assert.equal(c.providers.openai!.connections, DEFAULTS.provider.connections);
    assert.equal(c.server.port, DEFAULTS.server.port);
    assert.equal(c.tenants.acme!.priority, 'standard');
    assert.equal(c.models['gpt-4.1']!.deployments[0]!.weight, 1);
    assert.deepEqual(c.timeouts, DEFAULTS.timeouts);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.providers.openai));
    assert.throws(() => {
      (c.server as { port: number }).port = 1;
    });
  });

  const cases: Array<[string, string, string | RegExp]> = [
    ['unknown top-level key', `${BASE}\nbogus: 1`, 'bogus'],
    [
      'unknown provider key',
      BASE.replace('kind: openai,', 'kind: openai, colour: red,'),
      'providers.openai.colour',
    ],
    ['bad enum', BASE.replace('kind: openai', 'kind: banana'), 'providers.openai.kind'],
    [
      'negative pool',
      BASE.replace('kind: openai,', 'kind: openai, connections: -1,'),
      'providers.openai.connections',
    ],
    [
      'missing baseUrl',
      BASE.replace('baseUrl: "https://api.openai.com/v1", ', ''),
      'providers.openai.baseUrl',
    ],
    ['non-http baseUrl', BASE.replace('https://api.openai.com/v1', 'ftp://x/v1'), 'providers.openai.baseUrl'],
    ['baseUrl with a query', BASE.replace('/v1"', '/v1?x=1"'), 'providers.openai.baseUrl'],
    [
      'unknown provider reference',
      BASE.replace('provider: openai', 'provider: nope'),
      'models["gpt-4.1"].deployments[0].provider',
    ],
    ['empty deployments', BASE.replace('[{ provider: openai }]', '[]'), 'models["gpt-4.1"].deployments'],
    [
      'zero weight',
      BASE.replace('provider: openai }', 'provider: openai, weight: 0 }'),
      'models["gpt-4.1"].deployments[0].weight',
    ],
    ['bad key digest', BASE.replace(KEY, 'plaintext-key'), 'tenants.acme.keys[0]'],
    ['bad priority', BASE.replace('keys:', 'priority: vip, keys:'), 'tenants.acme.priority'],
    ['bad tenant name', BASE.replace('acme:', '"bad name!":'), 'tenants["bad name!"]'],
    ['missing section', BASE.replace(/tenants:[\s\S]*/, ''), 'tenants'],
    [
      'string for a number',
      BASE.replace('kind: openai,', 'kind: openai, connections: "8",'),
      'providers.openai.connections',
    ],
    [
      'unknown passthrough provider',
      `${BASE}\npassthrough: { provider: ghost, tenants: [acme], routes: [{ path: /files, methods: [GET] }] }`,
      'passthrough.provider',
    ],
    [
      'ladder: connect above first token',
      `${BASE}\ntimeouts: { connectTimeoutMs: 70000 }`,
      'providers.openai.timeouts.connectTimeoutMs',
    ],
    [
      'a model-level connect timeout (connections are pooled per provider)',
      BASE.replace(
        'deployments: [{ provider: openai }]',
        'deployments: [{ provider: openai }]\n    timeouts: { connectTimeoutMs: 500 }',
      ),
      'models["gpt-4.1"].timeouts.connectTimeoutMs',
    ],
    [
      'ladder: chunk gap above total (model level)',
      BASE.replace(
        'deployments: [{ provider: openai }]',
        'deployments: [{ provider: openai }]\n    timeouts: { chunkGapTimeoutMs: 900000 }',
      ),
      'models["gpt-4.1"].timeouts.chunkGapTimeoutMs',
    ],
    [
      'a negative limit',
      `${BASE}\nlimits: { tenants: { acme: { requests: { limit: -5, per: minute } } } }`,
      'limits.tenants.acme.requests.limit',
    ],
    [
      'a zero burst',
      `${BASE}\nlimits: { tenants: { acme: { tokens: { limit: 100, per: minute, burst: 0 } } } }`,
      'limits.tenants.acme.tokens.burst',
    ],
    [
      'a limit for an unknown tenant',
      `${BASE}\nlimits: { tenants: { ghost: { requests: { limit: 5, per: second } } } }`,
      'limits.tenants.ghost',
    ],
    [
      'a tenant limit on an unknown model',
      `${BASE}\nlimits: { tenants: { acme: { models: { gpt-9: { requests: { limit: 5, per: second } } } } } }`,
      'limits.tenants.acme.models.gpt-9',
    ],
    [
      'an unknown period',
      `${BASE}\nlimits: { tenants: { acme: { requests: { limit: 5, per: week } } } }`,
      'limits.tenants.acme.requests.per',
    ],
    [
      'a zero concurrency',
      `${BASE}\nlimits: { tenants: { acme: { concurrency: { max: 0 } } } }`,
      'limits.tenants.acme.concurrency.max',
    ],
    [
      'a budget for an unknown provider',
      `${BASE}\nlimits: { providers: { azure: { requests: { limit: 5, per: second } } } }`,
      'limits.providers.azure',
    ],
    [
      'fleet capacity for an unknown model',
      `${BASE}\nlimits: { fleet: { models: { gpt-9: { maxInFlight: 10 } } } }`,
      'limits.fleet.models.gpt-9',
    ],
    [
      'fleet shares out of order',
      `${BASE}\nlimits: { fleet: { shares: { batch: 0.9, standard: 0.8 } } }`,
      'limits.fleet.shares.batch',
    ],
    ['a non-Redis URL', `${BASE}\nlimits: { redis: { url: "http://x" } }`, 'limits.redis.url'],
    [
      'a queue cap larger than the connection pool',
      BASE.replace('apiKey: "${OPENAI_KEY}" }', 'apiKey: "${OPENAI_KEY}", connections: 8 }').replace(
        'deployments: [{ provider: openai }]',
        'deployments: [{ provider: openai }]\n    queue: { maxConcurrent: 16 }',
      ),
      'models["gpt-4.1"].queue.maxConcurrent',
    ],
    [
      'queue shares out of order',
      `${BASE}\nqueue: { shares: { standard: 0.9, critical: 0.5 } }`,
      'queue.shares.standard',
    ],
    ['a negative queue bound', `${BASE}\nqueue: { maxQueuedTotal: -1 }`, 'queue.maxQueuedTotal'],
    ['a non-Postgres request-log URL', `${BASE}\nrequestLog: { url: "mysql://x" }`, 'requestLog.url'],
    [
      'a request-log batch larger than its buffer',
      `${BASE}\nrequestLog: { batchRows: 5000, maxBufferedRows: 1000 }`,
      'requestLog.batchRows',
    ],
    [
      'an hourly-by-minute partition',
      `${BASE}\nrequestLog: { partitionInterval: minute }`,
      'requestLog.partitionInterval',
    ],
    [
      'a negative deployment price',
      BASE.replace(
        'deployments: [{ provider: openai }]',
        'deployments: [{ provider: openai, pricing: { inputPerMillion: -1, outputPerMillion: 1 } }]',
      ),
      'models["gpt-4.1"].deployments[0].pricing.inputPerMillion',
    ],
    [
      'a non-HTTP tracing endpoint',
      `${BASE}\ntracing: { endpoint: "grpc://collector:4317" }`,
      'tracing.endpoint',
    ],
    ['a sample ratio above 1', `${BASE}\ntracing: { sampleRatio: 1.5 }`, 'tracing.sampleRatio'],
    ['invalid YAML', 'providers: [unclosed', ''],
    ['not a mapping', '- a\n- b', ''],
  ];
  for (const [name, text, path] of cases) {
    it(`refuses ${name}, naming the field`, () => {
      const err = errorOf(text);
      assert.equal(err.path, path, err.message);
      if (path) assert.ok(err.message.startsWith(`${path}: `), err.message);
    });
  }

  it('fills the request-log defaults; an empty URL means DATABASE_URL or embedded', () => {
    const c = parseConfig(`${BASE}\nrequestLog: { url: "\${DB_URL:-}" }`, ENV);
    assert.equal(c.requestLog.url, '');
    assert.deepEqual({ ...c.requestLog, url: undefined }, { ...DEFAULTS.requestLog, url: undefined });
  });

  it('fills the limits defaults and accepts an empty Redis URL as "in memory"', () => {
    const c = parseConfig(`${BASE}\nlimits: { redis: { url: "\${REDIS_URL:-}" } }`, ENV);
    assert.equal(c.limits.redis.url, '');
    assert.deepEqual(c.limits.worker, { ...DEFAULTS.limits.worker });
    assert.deepEqual(c.limits.fleet.shares, { ...DEFAULTS.limits.fleetShares });
    assert.equal(c.limits.leaseTtlMs, DEFAULTS.limits.leaseTtlMs);
    assert.equal(parseConfig(BASE, ENV).limits.redis.failureMode, 'open');
  });

  it('sizes each model queue from its share of the connection pools it uses', () => {
    const text = `
providers:
  a: { kind: openai, baseUrl: "https://a.example/v1", connections: 30 }
  b: { kind: openai, baseUrl: "https://a.example/other/v1", connections: 10 }
  c: { kind: openai, baseUrl: "https://c.example/v1", connections: 8 }
models:
  m1: { deployments: [{ provider: a }] }
  m2: { deployments: [{ provider: b }, { provider: c }] }
  m3: { deployments: [{ provider: c }], queue: { maxConcurrent: 2, maxQueued: 5 } }
tenants:
  acme: { keys: ["${KEY}"] }
`;
    const caps = queueCapacities(parseConfig(text, ENV));
    // a.example's pool is 40 (a + b), shared by m1 and m2: 20 each; c.example's 8 by m2 and m3.
    assert.deepEqual(caps.get('m1'), { maxConcurrent: 20, maxQueued: 160 });
    assert.deepEqual(caps.get('m2'), { maxConcurrent: 4, maxQueued: 32 }, 'the smaller of its shares');
    assert.deepEqual(caps.get('m3'), { maxConcurrent: 2, maxQueued: 5 });
  });

  it('refuses the same key given to two tenants', () => {
    const err = errorOf(`${BASE}  other: { keys: ["${KEY}"] }\n`);
    assert.equal(err.path, 'tenants.other.keys[0]');
    assert.match(err.message, /already given to tenant "acme"/);
  });

  it('names the field of an unset ${ENV} variable; a fallback or an escape is fine', () => {
    const err = errorOf(BASE, {});
    assert.equal(err.path, 'providers.openai.apiKey');
    assert.match(err.message, /OPENAI_KEY is not set/);
    const c = parseConfig(BASE.replace('${OPENAI_KEY}', '${OPENAI_KEY:-sk-fallback}'), {});
    assert.equal(c.providers.openai!.apiKey, 'sk-fallback');
    const e = parseConfig(
      BASE.replace('${OPENAI_KEY}', () => 'lit$${X}'),
      {},
    );
    assert.equal(e.providers.openai!.apiKey, 'lit${X}');
  });

  it('interpolated secrets cannot change the document shape', () => {
    const c = parseConfig(BASE, { OPENAI_KEY: 'a: b # not a comment\n- list' });
    assert.equal(c.providers.openai!.apiKey, 'a: b # not a comment\n- list');
  });

  it('a fake provider may omit baseUrl (the in-process fake is used)', () => {
    const c = parseConfig(
      BASE.replace('openai: { kind: openai, baseUrl: "https://api.openai.com/v1",', 'openai: { kind: fake,'),
      ENV,
    );
    assert.equal(c.providers.openai!.baseUrl, undefined);
  });

  it('converts an interpolated value in a number or boolean field, strictly, naming the variable', () => {
    const c = parseConfig(
      `${BASE}\nserver: { port: "\${PORT}", drainTimeoutMs: "\${DRAIN:-1500}" }\nrequestLog: { enabled: "\${LOG}" }`,
      { ...ENV, PORT: '9090', LOG: 'false' },
    );
    assert.equal(c.server.port, 9090);
    assert.equal(c.server.drainTimeoutMs, 1500);
    assert.equal(c.requestLog.enabled, false);
    // Inside a map and an array too: the walk follows the schema, not only named properties.
    const limited = parseConfig(
      `${BASE}\nlimits: { tenants: { acme: { requests: { limit: "\${RPM}", per: minute } } } }`,
      {
        ...ENV,
        RPM: '600',
      },
    );
    assert.equal(limited.limits.tenants!.acme!.requests!.limit, 600);
    const port = (value: string) => errorOf(`${BASE}\nserver: { port: "\${PORT}" }`, { ...ENV, PORT: value });
    for (const bad of ['abc', '80 80', '0x50', '8080.5', '']) {
      const err = bad === '' ? errorOf(`${BASE}\nserver: { port: "\${PORT:-}" }`) : port(bad);
      assert.equal(err.path, 'server.port', bad);
      assert.match(err.message, /\$\{PORT\} gave ".*", which is not an integer/, bad);
    }
    // Converted, then validated like any number, and the error still names the variable.
    const range = port('99999');
    assert.equal(range.path, 'server.port');
    assert.match(range.message, /must be <= 65535 \(from \$\{PORT\}\)/);
    assert.match(
      errorOf(`${BASE}\nrequestLog: { enabled: "\${LOG}" }`, { ...ENV, LOG: 'yes' }).message,
      /requestLog\.enabled: \$\{LOG\} gave "yes", which is not true or false/,
    );
    // A quoted number written in the file stays a string: the schema is strict about the file.
    assert.equal(errorOf(`${BASE}\nserver: { port: "9090" }`).path, 'server.port');
    // String fields are untouched: an API key made of digits stays a string.
    assert.equal(parseConfig(BASE, { OPENAI_KEY: '12345' }).providers.openai!.apiKey, '12345');
  });

  it('names a misspelt required key and suggests the setting it resembles', () => {
    const err = errorOf(BASE.replace('deployments:', 'deployements:'));
    assert.equal(err.path, 'models["gpt-4.1"].deployments');
    assert.match(
      err.message,
      /is required \(found unknown key "deployements": did you mean "deployments"\?\)/,
    );
    const far = errorOf(BASE.replace('deployments:', 'routes:'));
    assert.match(far.message, /deployments: is required \(found unknown key "routes"\)$/);
    const section = errorOf(BASE.replace('tenants:', 'tenents:'));
    assert.equal(section.path, 'tenants');
    assert.match(section.message, /found unknown key "tenents": did you mean "tenants"\?/);
    const setting = errorOf(`${BASE}\nserver: { prot: 9090 }`);
    assert.equal(setting.path, 'server.prot');
    assert.match(setting.message, /is not a known setting \(did you mean "port"\?\)$/);
    assert.match(
      errorOf(`${BASE}\nserver: { colour: red }`).message,
      /server\.colour: is not a known setting$/,
    );
  });
});
