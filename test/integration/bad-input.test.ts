/** Bad input gets a clear 4xx in OpenAI's error shape, never a crash, a hang or a stack trace. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { hashKey } from '../../src/auth/keys.ts';
import { chatBody, type Harness, startHarness, TENANT_KEY } from '../helpers/harness.ts';

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

async function post(h: Harness, path: string, body: string, headers: Record<string, string> = h.headers()) {
  const res = await request(`${h.url}${path}`, { method: 'POST', headers, body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: JSON.parse(text) as ErrorBody, text };
}

describe('bad input', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        server: { bodyLimitBytes: 4096 },
        providers: { fake: { kind: 'openai', baseUrl: fake.baseUrl } },
        models: { 'test-model': { deployments: [{ provider: 'fake' }] } },
        tenants: { acme: { keys: [hashKey(TENANT_KEY)] } },
      }),
    });
  });
  after(() => h.close());

  it('malformed JSON -> 400 invalid_json', async () => {
    const r = await post(h, '/v1/chat/completions', '{"model": "test-model", ');
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'invalid_json');
    assert.equal(r.body.error.type, 'invalid_request_error');
  });

  it('empty body -> 400 invalid_json', async () => {
    const r = await post(h, '/v1/chat/completions', '');
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'invalid_json');
  });

  it('wrong content type -> 415 unsupported_media_type', async () => {
    const r = await post(h, '/v1/chat/completions', chatBody(), h.headers({ 'content-type': 'text/plain' }));
    assert.equal(r.status, 415);
    assert.equal(r.body.error.code, 'unsupported_media_type');
  });

  it('body over the configured limit -> 413 request_too_large', async () => {
    const r = await post(h, '/v1/chat/completions', chatBody({ padding: 'x'.repeat(10_000) }));
    assert.equal(r.status, 413);
    assert.equal(r.body.error.code, 'request_too_large');
  });

  it('missing model -> 400 naming the field', async () => {
    const r = await post(
      h,
      '/v1/chat/completions',
      JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }),
    );
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'invalid_request');
    assert.equal(r.body.error.param, 'model');
  });

  it('unknown model -> 404 model_not_found with the model name', async () => {
    const r = await post(h, '/v1/chat/completions', chatBody({ model: 'gpt-9-ultra' }));
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'model_not_found');
    assert.match(r.body.error.message, /gpt-9-ultra/);
    assert.equal(r.body.error.param, 'model');
  });

  it('wrong field types -> 400 naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ stream: 'yes' }, 'stream'],
      [{ max_tokens: -3 }, 'max_tokens'],
      [{ temperature: 'hot' }, 'temperature'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ content: 'no role' }] }, 'messages[0].role'],
      [{ model: 42 }, 'model'],
    ];
    for (const [extra, param] of cases) {
      const r = await post(h, '/v1/chat/completions', chatBody(extra));
      assert.equal(r.status, 400, JSON.stringify(extra));
      assert.equal(r.body.error.code, 'invalid_request');
      assert.equal(r.body.error.param, param, JSON.stringify(extra));
    }
  });

  it('a JSON body that is not an object -> 400', async () => {
    for (const body of ['[]', '"text"', '42', 'null']) {
      const r = await post(h, '/v1/chat/completions', body);
      assert.equal(r.status, 400, body);
      assert.ok(['invalid_request', 'invalid_json'].includes(r.body.error.code!), body);
    }
  });

  it('missing or wrong key -> 401 in OpenAI shape', async () => {
    const none = await post(h, '/v1/chat/completions', chatBody(), { 'content-type': 'application/json' });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'missing_api_key');
    const basic = await post(h, '/v1/chat/completions', chatBody(), {
      'content-type': 'application/json',
      authorization: 'Basic Zm9vOmJhcg==',
    });
    assert.equal(basic.body.error.code, 'missing_api_key');
    const wrong = await post(
      h,
      '/v1/chat/completions',
      chatBody(),
      h.headers({ authorization: 'Bearer sk-nope' }),
    );
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.code, 'invalid_api_key');
    assert.equal(wrong.body.error.type, 'authentication_error');
  });

  it('unknown path -> 404 not_found; unknown /v1 path without pass-through -> 404 not_found', async () => {
    const a = await request(`${h.url}/nope`);
    assert.equal(a.statusCode, 404);
    assert.equal(((await a.body.json()) as ErrorBody).error.code, 'not_found');
    const b = await request(`${h.url}/v1/files`, { headers: h.headers() });
    assert.equal(b.statusCode, 404);
    const body = (await b.body.json()) as ErrorBody;
    assert.equal(body.error.code, 'not_found');
    assert.match(body.error.message, /\/v1\/files/);
  });

  it('every response carries x-request-id; a sane caller id is echoed, an odd one replaced', async () => {
    const mine = await request(`${h.url}/v1/models`, {
      headers: h.headers({ 'x-request-id': 'trace-abc.123' }),
    });
    await mine.body.dump();
    assert.equal(mine.headers['x-request-id'], 'trace-abc.123');
    const odd = await request(`${h.url}/v1/models`, {
      headers: h.headers({ 'x-request-id': 'a b<script>' }),
    });
    await odd.body.dump();
    assert.match(String(odd.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const err = await post(h, '/v1/chat/completions', '{', h.headers());
    assert.ok(err.headers['x-request-id']);
  });

  it('no stack traces or internals leak into error bodies', async () => {
    const r = await post(h, '/v1/chat/completions', '{"__proto__": {"x": 1}, "model": "test-model"}');
    assert.equal(r.status, 400);
    assert.ok(!/at \w+ \(|node_modules|\.ts:\d+/.test(r.text), r.text);
  });
});
