/** The drop-in claim: the official OpenAI SDK, pointed at Sluice, works unchanged. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { type Harness, startHarness, TENANT_KEY } from '../helpers/harness.ts';

describe('OpenAI SDK against Sluice', () => {
  let h: Harness;
  let client: OpenAI;
  before(async () => {
    h = await startHarness();
    client = new OpenAI({ baseURL: h.baseURL, apiKey: TENANT_KEY, maxRetries: 0, timeout: 10_000 });
  });
  after(() => h.close());

  it('chat completion (JSON) is answered by the routed deployment with the upstream model name', async () => {
    const before = h.fake.stats.requests;
    const res = await client.chat.completions.create({
      model: 'test-model',
      messages: [{ role: 'user', content: 'hello there' }],
    });
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.choices[0]?.message.content, 'tok0 tok1 tok2 tok3 tok4 ');
    assert.equal(res.usage?.completion_tokens, 5);
    assert.equal(h.fake.stats.requests, before + 1);
    const sent = JSON.parse(h.fake.stats.lastRequest!.body) as { model: string };
    assert.equal(sent.model, 'upstream-test-model');
  });

  it('streaming chat completion arrives chunk by chunk and without the usage chunk it did not ask for', async () => {
    const stream = await client.chat.completions.create({
      model: 'test-model',
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
    });
    const parts: string[] = [];
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.ok(chunk.choices.length > 0, 'no usage-only chunk (choices: []) unless asked for');
      parts.push(chunk.choices[0]?.delta.content ?? '');
    }
    assert.equal(parts.join(''), 'tok0 tok1 tok2 tok3 tok4 ');
    assert.equal(chunks, 6);
    const sent = JSON.parse(h.fake.stats.lastRequest!.body) as {
      stream_options?: { include_usage?: boolean };
    };
    assert.equal(sent.stream_options?.include_usage, true, 'Sluice asks the provider for usage');
  });

  it('streaming with include_usage passes the usage chunk through', async () => {
    const stream = await client.chat.completions.create({
      model: 'test-model',
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    assert.equal(usage?.completion_tokens, 5);
  });

  it('legacy completions, JSON and streaming', async () => {
    const res = await client.completions.create({ model: 'test-model', prompt: 'Say hi' });
    assert.equal(res.object, 'text_completion');
    assert.ok((res.choices[0]?.text ?? '').length > 0);
    const stream = await client.completions.create({ model: 'test-model', prompt: 'Say hi', stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ');
  });

  it('embeddings', async () => {
    const res = await client.embeddings.create({ model: 'text-embedding-test', input: ['a', 'b'] });
    assert.equal(res.data.length, 2);
    assert.equal(res.data[0]?.embedding.length, 8);
  });

  it('models lists the configured public names', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids.sort(), ['test-model', 'text-embedding-test']);
  });

  it('errors map to the SDK exception classes', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      (err: unknown) => err instanceof OpenAI.NotFoundError && err.code === 'model_not_found',
    );
    const wrongKey = new OpenAI({ baseURL: h.baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(
      wrongKey.chat.completions.create({ model: 'test-model', messages: [{ role: 'user', content: 'x' }] }),
      (err: unknown) => err instanceof OpenAI.AuthenticationError && err.code === 'invalid_api_key',
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'test-model', messages: 'not-a-list' as never }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'messages',
    );
  });
});
