import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import type { PassthroughConfig } from '../../src/config/schema.ts';
import { inferencePath, PassthroughRules, patternProblem } from '../../src/routing/passthrough-rules.ts';

const seg = (path: string) => path.slice(1).split('/');

describe('inferencePath', () => {
  it('finds inference paths and what lies under them, case-insensitively', () => {
    assert.deepEqual(inferencePath(seg('/chat/completions')), { path: '/chat/completions', exact: true });
    assert.deepEqual(inferencePath(seg('/CHAT/Completions')), { path: '/chat/completions', exact: true });
    assert.deepEqual(inferencePath(seg('/chat/completions/cmpl-1')), {
      path: '/chat/completions',
      exact: false,
    });
    assert.deepEqual(inferencePath(seg('/responses/resp_1/input_items')), {
      path: '/responses',
      exact: false,
    });
    for (const p of ['/completions', '/embeddings', '/messages', '/responses']) {
      assert.equal(inferencePath(seg(p))?.exact, true, p);
    }
  });

  it('leaves other paths alone', () => {
    for (const p of ['/chat', '/files', '/chat/other', '/completionsx', '/batches/x/cancel']) {
      assert.equal(inferencePath(seg(p)), undefined, p);
    }
    assert.equal(inferencePath([]), undefined);
  });
});

describe('PassthroughRules', () => {
  const section: PassthroughConfig = {
    provider: 'p',
    tenants: ['a', 'b'],
    routes: [
      { path: '/files', methods: ['GET', 'POST'] },
      { path: '/files/*', methods: ['GET'] },
      { path: '/files/*', methods: ['DELETE'], tenants: ['a'] },
      { path: '/fine_tuning/**', methods: ['GET'] },
      { path: '/uploads', methods: ['POST'], tenants: ['c'] },
    ],
  };
  const rules = new PassthroughRules(section);

  it('allows a listed path and method to a listed tenant, naming the pattern', () => {
    assert.deepEqual(rules.match(seg('/files'), 'GET', 'a'), { kind: 'allowed', route: '/v1/files' });
    assert.deepEqual(rules.match(seg('/files/f1'), 'GET', 'b'), { kind: 'allowed', route: '/v1/files/*' });
    assert.deepEqual(rules.match(seg('/files/f1'), 'DELETE', 'a'), { kind: 'allowed', route: '/v1/files/*' });
    assert.deepEqual(rules.match(seg('/fine_tuning/jobs/j1/events'), 'GET', 'a'), {
      kind: 'allowed',
      route: '/v1/fine_tuning/**',
    });
    assert.deepEqual(rules.match(seg('/uploads'), 'POST', 'c'), { kind: 'allowed', route: '/v1/uploads' });
  });

  it('answers 405 with the methods of every matching route open to the tenant', () => {
    assert.deepEqual(rules.match(seg('/files/f1'), 'PUT', 'a'), {
      kind: 'method_not_allowed',
      allow: 'GET, DELETE',
    });
    // b may not DELETE: that route is a's only, so b is told about GET alone.
    assert.deepEqual(rules.match(seg('/files/f1'), 'DELETE', 'b'), {
      kind: 'method_not_allowed',
      allow: 'GET',
    });
  });

  it('is not found for unlisted paths and for tenants no matching route is open to', () => {
    for (const [path, method, tenant] of [
      ['/files/f1/content', 'GET', 'a'],
      ['/fine_tuning', 'GET', 'a'],
      ['/Files', 'GET', 'a'],
      ['/files', 'GET', 'c'],
      ['/uploads', 'POST', 'a'],
      ['/uploads', 'GET', 'a'],
      ['/files', 'GET', 'nobody'],
    ] as const) {
      assert.deepEqual(
        rules.match(seg(path), method, tenant),
        { kind: 'not_found' },
        `${method} ${path} ${tenant}`,
      );
    }
  });
});

describe('patternProblem', () => {
  it('accepts ordinary patterns', () => {
    for (const p of ['/files', '/files/*', '/batches/*/cancel', '/fine_tuning/**', '/chat', '/chat/other']) {
      assert.equal(patternProblem(p), undefined, p);
    }
  });

  it('refuses ** before the end and patterns that could reach an inference path', () => {
    assert.match(patternProblem('/files/**/content')!, /only be the last/);
    for (const p of [
      '/chat/completions',
      '/chat/*',
      '/*/completions',
      '/*',
      '/**',
      '/responses/*',
      '/Embeddings',
    ]) {
      assert.match(patternProblem(p)!, /inference path/, p);
    }
  });
});

describe('passthrough config', () => {
  const KEY = `sha256:${'a'.repeat(64)}`;
  const base = (passthrough: string) => `
providers:
  openai: { kind: openai, baseUrl: "https://api.openai.com/v1", apiKey: sk-1 }
models:
  m: { deployments: [{ provider: openai }] }
tenants:
  acme: { keys: ["${KEY}"] }
passthrough: ${passthrough}
`;
  const errorOf = (passthrough: string): ConfigError => {
    try {
      parseConfig(base(passthrough), {});
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err;
    }
    assert.fail(`accepted: ${passthrough}`);
  };

  it('accepts an explicit section', () => {
    const config = parseConfig(
      base(`{ provider: openai, tenants: [acme], routes: [{ path: /files/*, methods: [GET, DELETE] }] }`),
      {},
    );
    assert.deepEqual(config.passthrough?.routes[0]?.methods, ['GET', 'DELETE']);
  });

  it('refuses bad sections with errors that name the field', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['{ provider: openai }', 'passthrough.routes', /required/],
      ['{ provider: openai, tenants: [acme], routes: [] }', 'passthrough.routes', /fewer than 1/],
      [
        '{ provider: ghost, tenants: [acme], routes: [{ path: /files, methods: [GET] }] }',
        'passthrough.provider',
        /unknown provider/,
      ],
      [
        '{ provider: openai, tenants: [ghost], routes: [{ path: /files, methods: [GET] }] }',
        'passthrough.tenants[0]',
        /unknown tenant "ghost"/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: /files, methods: [GET], tenants: [acme, ghost] }] }',
        'passthrough.routes[0].tenants[1]',
        /unknown tenant/,
      ],
      [
        '{ provider: openai, routes: [{ path: /files, methods: [GET] }] }',
        'passthrough.routes[0].tenants',
        /required when/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: /files, methods: [TRACE] }] }',
        'passthrough.routes[0].methods[0]',
        /one of/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: /files, methods: [] }] }',
        'passthrough.routes[0].methods',
        /fewer/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: files, methods: [GET] }] }',
        'passthrough.routes[0].path',
        /pattern/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: /files/, methods: [GET] }] }',
        'passthrough.routes[0].path',
        /pattern/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: "/files/../x", methods: [GET] }] }',
        'passthrough.routes[0].path',
        /pattern/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: "/files/a*", methods: [GET] }] }',
        'passthrough.routes[0].path',
        /pattern/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: "/files/**/x", methods: [GET] }] }',
        'passthrough.routes[0].path',
        /last segment/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: /files, methods: [GET] }, { path: "/chat/*", methods: [GET] }] }',
        'passthrough.routes[1].path',
        /inference path/,
      ],
      [
        '{ provider: openai, tenants: [acme], routes: [{ path: /files, methods: [GET], other: 1 }] }',
        'passthrough.routes[0].other',
        /not a known setting/,
      ],
    ];
    for (const [section, path, message] of cases) {
      const err = errorOf(section);
      assert.equal(err.path, path, `${section}: ${err.message}`);
      assert.match(err.message, message, section);
    }
  });
});
