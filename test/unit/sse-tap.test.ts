import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SseTap } from '../../src/upstream/sse-tap.ts';
import { extractUsage } from '../../src/upstream/usage.ts';

const content = (i: number) =>
  `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"t${i}"}}],"usage":null}\n\n`;
const usage =
  'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}\n\n';
const done = 'data: [DONE]\n\n';
const STREAM = content(0) + content(1) + content(2) + usage + done;

function run(tap: SseTap, pieces: string[]): string {
  let out = '';
  for (const p of pieces) out += tap.push(Buffer.from(p))?.toString() ?? '';
  out += tap.end()?.toString() ?? '';
  return out;
}

/** Split `s` at every position in `cuts`. */
const splitAt = (s: string, cuts: number[]) =>
  [0, ...cuts, s.length].slice(1).map((end, i, arr) => s.slice(i === 0 ? 0 : arr[i - 1], end));

describe('SseTap', () => {
  it('forwards a whole-event chunk as the same buffer (no copy)', () => {
    const tap = new SseTap(false);
    const chunk = Buffer.from(content(0));
    assert.equal(tap.push(chunk), chunk);
  });

  it('holds back a partial event until its end arrives', () => {
    const tap = new SseTap(false);
    const event = content(0);
    assert.equal(tap.push(Buffer.from(event.slice(0, 10))), undefined);
    assert.equal(tap.push(Buffer.from(event.slice(10)))?.toString(), event);
  });

  it('reads usage and strips the usage-only chunk when the client did not ask for it, however the bytes are cut', () => {
    for (let cut = 1; cut < STREAM.length; cut += 7) {
      const tap = new SseTap(true);
      const out = run(tap, splitAt(STREAM, [cut, Math.min(STREAM.length - 1, cut + 50)]));
      assert.equal(out, content(0) + content(1) + content(2) + done, `cut at ${cut}`);
      assert.deepEqual(tap.usage, { promptTokens: 11, completionTokens: 3, totalTokens: 14 });
      assert.equal(tap.sawDone, true);
      assert.equal(tap.events, 5);
    }
  });

  it('keeps the usage chunk when the client asked for it', () => {
    const tap = new SseTap(false);
    assert.equal(run(tap, [STREAM]), STREAM);
    assert.equal(tap.usage?.completionTokens, 3);
  });

  it('does not treat "usage":null in content chunks as usage', () => {
    const tap = new SseTap(true);
    assert.equal(run(tap, [content(0)]), content(0));
    assert.equal(tap.usage, undefined);
  });

  it('a role-only opening chunk is not the first token; content, a tool call or the finish is', () => {
    const role = 'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n';
    const tap = new SseTap(false);
    tap.push(Buffer.from(role));
    assert.equal(tap.firstTokenSeen, false);
    tap.push(Buffer.from(content(0)));
    assert.equal(tap.firstTokenSeen, true);
    const tool = new SseTap(false);
    tool.push(Buffer.from('data: {"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}\n\n'));
    assert.equal(tool.firstTokenSeen, true);
    const empty = new SseTap(false);
    empty.push(Buffer.from(done));
    assert.equal(empty.firstTokenSeen, true, '[DONE] ends the wait too');
  });

  it('forwards an oversized event without a boundary instead of buffering without bound', () => {
    const tap = new SseTap(false);
    const big = Buffer.alloc(1024 * 1024 + 10, 'a');
    assert.equal(tap.push(big)?.length, big.length);
  });
});

describe('extractUsage', () => {
  it('reads usage from a JSON body, spaces or not', () => {
    assert.deepEqual(
      extractUsage('{"x":1,"usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}}'),
      {
        promptTokens: 9,
        completionTokens: 12,
        totalTokens: 21,
      },
    );
  });
  it('handles embeddings usage (no completion tokens) and absence', () => {
    assert.deepEqual(extractUsage(Buffer.from('{"usage":{"prompt_tokens":4,"total_tokens":4}}')), {
      promptTokens: 4,
      completionTokens: 0,
      totalTokens: 4,
    });
    assert.equal(extractUsage('{"choices":[]}'), undefined);
    assert.equal(extractUsage('{"usage":null}'), undefined);
  });
});
