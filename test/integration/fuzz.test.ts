/**
 * Fuzz-style robustness: hundreds of malformed bodies, headers, methods and paths, generated from
 * a fixed seed. Every answer must be a well-formed OpenAI error (or a real completion when a
 * mutation happens to stay valid), and the gateway must still be healthy afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { chatBody, type Harness, startHarness, TENANT_KEY } from '../helpers/harness.ts';

/** mulberry32: small, seeded, good enough to make the same cases on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD_VALUES: unknown[] = [
  null,
  true,
  -1,
  0,
  1e308,
  -1e308,
  '',
  'x'.repeat(300),
  '\u0000\uffff\ud800',
  [],
  {},
  [[[[[]]]]],
  { $ref: '#' },
  { __proto__: { polluted: true } },
];
const FIELDS = [
  'model',
  'messages',
  'stream',
  'stream_options',
  'max_tokens',
  'n',
  'temperature',
  'prompt',
  'input',
];
const PATHS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings'];

function mutateBody(rand: () => number): string {
  const base = chatBody();
  switch (Math.floor(rand() * 7)) {
    case 0:
      return base.slice(0, Math.floor(rand() * base.length));
    case 1: {
      const bytes = Buffer.from(base);
      for (let i = 0; i < 1 + rand() * 5; i++)
        bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      return bytes.toString('latin1');
    }
    case 2: {
      const obj = JSON.parse(base) as Record<string, unknown>;
      obj[FIELDS[Math.floor(rand() * FIELDS.length)]!] = ODD_VALUES[Math.floor(rand() * ODD_VALUES.length)];
      return JSON.stringify(obj);
    }
    case 3:
      return '['.repeat(1 + Math.floor(rand() * 1500));
    case 4:
      return JSON.stringify(ODD_VALUES[Math.floor(rand() * ODD_VALUES.length)]);
    case 5:
      return `{"model":"test-model","messages":[{"role":"user","content":"${'\\u'.repeat(1 + Math.floor(rand() * 3))}"}]}`;
    default: {
      const obj = JSON.parse(base) as Record<string, unknown>;
      delete obj[FIELDS[Math.floor(rand() * 2)]!];
      return JSON.stringify(obj);
    }
  }
}

function mutateHeaders(rand: () => number): Record<string, string> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${TENANT_KEY}`,
    'content-type': 'application/json',
  };
  switch (Math.floor(rand() * 8)) {
    case 0:
      delete headers.authorization;
      break;
    case 1:
      headers.authorization = ['Bearer', 'Bearer ', 'bearer x', `Token ${TENANT_KEY}`, 'Bearer \t'][
        Math.floor(rand() * 5)
      ]!;
      break;
    case 2:
      headers['content-type'] = [
        'text/plain',
        'application/x-www-form-urlencoded',
        'application/jsonx',
        'multipart/form-data; boundary=x',
        '',
      ][Math.floor(rand() * 5)]!;
      break;
    case 3:
      headers['x-request-id'] = 'x'.repeat(Math.floor(rand() * 400));
      break;
    case 4:
      headers['content-type'] = 'application/json; charset=latin1';
      break;
    case 5:
      headers['content-encoding'] = 'gzip';
      break;
    default:
      break;
  }
  return headers;
}

function assertWellFormed(status: number, text: string, what: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    assert.fail(`${what}: answer is not JSON (status ${status}): ${text.slice(0, 200)}`);
  }
  if (status >= 200 && status < 300) return;
  assert.ok(status >= 400 && status < 500, `${what}: expected a 4xx, got ${status}: ${text.slice(0, 200)}`);
  const error = (parsed as { error?: Record<string, unknown> }).error;
  assert.ok(error && typeof error === 'object', `${what}: no error object`);
  assert.equal(typeof error.message, 'string', what);
  assert.equal(typeof error.type, 'string', what);
  assert.equal(typeof error.code, 'string', what);
  assert.ok('param' in error, what);
  assert.ok(!/\n\s+at |node_modules/.test(text), `${what}: stack trace leaked`);
}

describe('fuzz', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        // A quarter of the cases send no or a malformed key, all from one address: with the
        // failure limit on, most bodies would meet a 429 before being parsed. That limit has its
        // own test (auth-failures.test.ts); here it is off so the bodies are what gets fuzzed.
        server: { bodyLimitBytes: 8192, authFailures: { burst: 0 } },
        providers: { fake: { kind: 'openai', baseUrl: fake.baseUrl } },
        models: { 'test-model': { deployments: [{ provider: 'fake' }] } },
        tenants: { acme: { keys: [hashKey(TENANT_KEY)] } },
      }),
    });
  });
  after(() => h.close());

  it('answers 400 malformed requests with well-formed OpenAI errors and stays healthy', async () => {
    const rand = prng(20261129);
    const statuses = new Map<number, number>();
    for (let i = 0; i < 400; i++) {
      const path = PATHS[Math.floor(rand() * PATHS.length)]!;
      const body = mutateBody(rand);
      const headers = mutateHeaders(rand);
      const res = await request(`${h.url}${path}`, { method: 'POST', headers, body, headersTimeout: 5_000 });
      const text = await res.body.text();
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      assertWellFormed(
        res.statusCode,
        text,
        `case ${i} ${path} ${body.slice(0, 80)} ${JSON.stringify(headers)}`,
      );
    }
    // The generator must actually exercise the error paths, not only the happy one.
    const errors = [...statuses].filter(([s]) => s >= 400).reduce((n, [, c]) => n + c, 0);
    assert.ok(errors > 250, `only ${errors} error answers: ${JSON.stringify([...statuses])}`);
    const health = await request(`${h.url}/healthz`);
    assert.equal(health.statusCode, 200);
    await health.body.dump();
  });

  it('odd methods and paths get 404/4xx in OpenAI shape', async () => {
    const rand = prng(7);
    const methods = ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
    const paths = [
      '/',
      '/v2/chat/completions',
      '/v1/chat/completions/extra',
      '/%zz',
      '/v1/../etc/passwd',
      '/v1//models',
    ];
    for (let i = 0; i < 60; i++) {
      const method = methods[Math.floor(rand() * methods.length)]!;
      const path = paths[Math.floor(rand() * paths.length)]!;
      const res = await request(`${h.url}${path}`, { method, headers: { authorization: 'Bearer nope' } });
      const text = await res.body.text();
      if (method === 'OPTIONS' && res.statusCode < 300) continue;
      assertWellFormed(res.statusCode, text, `${method} ${path}`);
    }
  });
});
