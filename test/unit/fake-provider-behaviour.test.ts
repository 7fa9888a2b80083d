import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BEHAVIOUR_NAMES,
  type Behaviour,
  DEFAULT_BEHAVIOUR,
  parseBehaviour,
  parseBehaviourOptions,
  resolveDefaults,
  splitBehaviourPath,
} from '../../src/fake-provider/behaviour.ts';

const defaults = resolveDefaults();

function ok(
  headers: Record<string, string | string[]>,
  path?: string,
  base: Behaviour = defaults,
): Behaviour {
  const r = parseBehaviour(headers, path, base);
  assert.equal(r.error, undefined, r.error?.message);
  return r.behaviour!;
}

describe('splitBehaviourPath', () => {
  it('leaves URLs without a behaviour segment alone', () => {
    assert.deepEqual(splitBehaviourPath('/v1/chat/completions'), {
      behaviourText: undefined,
      rest: '/v1/chat/completions',
    });
    assert.deepEqual(splitBehaviourPath('/v1/fake/status=1'), {
      behaviourText: undefined,
      rest: '/v1/fake/status=1',
    });
    assert.deepEqual(splitBehaviourPath('/fakes/status=1/v1'), {
      behaviourText: undefined,
      rest: '/fakes/status=1/v1',
    });
    assert.deepEqual(splitBehaviourPath('/fake'), { behaviourText: undefined, rest: '/fake' });
  });

  it('splits the segment before /v1 and keeps the query on rest', () => {
    assert.deepEqual(splitBehaviourPath('/fake/status=503,chunks=2/v1/chat/completions?a=1&b=2'), {
      behaviourText: 'status=503,chunks=2',
      rest: '/v1/chat/completions?a=1&b=2',
    });
    assert.deepEqual(splitBehaviourPath('/fake/status=503/v1'), { behaviourText: 'status=503', rest: '/v1' });
  });

  it('handles an empty segment and a segment with nothing after it', () => {
    assert.deepEqual(splitBehaviourPath('/fake//v1/models'), { behaviourText: '', rest: '/v1/models' });
    assert.deepEqual(splitBehaviourPath('/fake/chunks=2'), { behaviourText: 'chunks=2', rest: '/' });
    assert.deepEqual(splitBehaviourPath('/fake/chunks=2?x=1'), { behaviourText: 'chunks=2', rest: '/?x=1' });
  });
});

describe('parseBehaviour', () => {
  it('returns the defaults object itself when nothing overrides it', () => {
    const r = parseBehaviour({ host: 'x', 'content-type': 'application/json' }, undefined, defaults);
    assert.equal(r.behaviour, defaults);
    assert.equal(parseBehaviour({}, '', defaults).behaviour, defaults);
  });

  it('has the documented defaults', () => {
    assert.deepEqual(defaults, {
      headersDelayMs: 0,
      firstChunkDelayMs: 0,
      chunks: 5,
      chunkGapMs: 0,
      usage: true,
      failRate: 0,
      failStatus: 503,
    });
    assert.deepEqual({ ...DEFAULT_BEHAVIOUR }, defaults);
  });

  it('reads every behaviour from headers', () => {
    const b = ok({
      'x-fake-status': '429',
      'x-fake-retry-after': '1.5',
      'x-fake-retry-after-ms': '1500',
      'x-fake-headers-delay-ms': '10',
      'x-fake-first-chunk-delay-ms': '20',
      'x-fake-chunks': '7',
      'x-fake-chunk-gap-ms': '2.5',
      'x-fake-chunk-size': '16384',
      'x-fake-stall-after': '3',
      'x-fake-disconnect-after': '0',
      'x-fake-usage': 'false',
      'x-fake-fail-rate': '0.25',
      'x-fake-fail-status': '502',
    });
    assert.deepEqual(b, {
      status: 429,
      retryAfter: '1.5',
      retryAfterMs: '1500',
      headersDelayMs: 10,
      firstChunkDelayMs: 20,
      chunks: 7,
      chunkGapMs: 2.5,
      chunkSize: 16384,
      stallAfter: 3,
      disconnectAfter: 0,
      usage: false,
      failRate: 0.25,
      failStatus: 502,
    });
    assert.equal(defaults.chunks, 5, 'defaults are not mutated');
  });

  it('reads behaviours from the path segment, percent-decoded', () => {
    const b = ok({}, 'status=503,retry-after=2,chunks=3,,usage=0,chunk-gap-ms=%31%30');
    assert.equal(b.status, 503);
    assert.equal(b.retryAfter, '2');
    assert.equal(b.chunks, 3);
    assert.equal(b.usage, false);
    assert.equal(b.chunkGapMs, 10);
    assert.equal(b.failRate, 0);
  });

  it('gives headers precedence over the path, and the path over defaults', () => {
    const base = resolveDefaults({ chunks: 9, chunkGapMs: 4, usage: false });
    const b = ok(
      { 'x-fake-chunks': '3', 'x-fake-status': '200' },
      'chunks=2,status=503,chunk-gap-ms=1',
      base,
    );
    assert.equal(b.chunks, 3);
    assert.equal(b.status, 200);
    assert.equal(b.chunkGapMs, 1);
    assert.equal(b.usage, false);
    const p = ok({}, 'chunks=2', base);
    assert.equal(p.chunks, 2);
    assert.equal(p.chunkGapMs, 4);
  });

  it('accepts boundary values', () => {
    assert.equal(ok({ 'x-fake-status': '100' }).status, 100);
    assert.equal(ok({ 'x-fake-status': '599' }).status, 599);
    assert.equal(ok({ 'x-fake-fail-rate': '0' }).failRate, 0);
    assert.equal(ok({ 'x-fake-fail-rate': '1' }).failRate, 1);
    assert.equal(ok({ 'x-fake-fail-rate': '.5' }).failRate, 0.5);
    assert.equal(ok({ 'x-fake-chunks': '1' }).chunks, 1);
    assert.equal(ok({ 'x-fake-stall-after': '0' }).stallAfter, 0);
    assert.equal(ok({ 'x-fake-usage': 'TRUE' }).usage, true);
    assert.equal(ok({ 'x-fake-chunks': ' 4 ' }).chunks, 4);
    assert.equal(ok({ 'x-fake-retry-after': '0' }).retryAfter, '0');
  });

  const bad: [string, string][] = [
    ['status', '99'],
    ['status', '600'],
    ['status', '503.5'],
    ['status', 'abc'],
    ['retry-after', '-1'],
    ['retry-after', 'soon'],
    ['retry-after-ms', '1e3'],
    ['headers-delay-ms', '-5'],
    ['headers-delay-ms', '2147483648'],
    ['first-chunk-delay-ms', 'x'],
    ['chunks', '0'],
    ['chunks', '2.5'],
    ['chunks', ''],
    ['chunk-gap-ms', 'NaN'],
    ['chunk-size', '0'],
    ['stall-after', '-1'],
    ['disconnect-after', 'one'],
    ['usage', 'yes'],
    ['fail-rate', '1.01'],
    ['fail-rate', '-0.1'],
    ['fail-status', '200'],
    ['fail-status', '600'],
  ];
  for (const [name, value] of bad) {
    it(`rejects x-fake-${name}: ${JSON.stringify(value)} naming the header`, () => {
      const r = parseBehaviour({ [`x-fake-${name}`]: value }, undefined, defaults);
      assert.equal(r.behaviour, undefined);
      assert.equal(r.error?.name, name);
      assert.equal(r.error?.source, 'header');
      assert.equal(r.error?.param, `x-fake-${name}`);
      assert.equal(r.error?.value, value);
      assert.match(r.error?.message ?? '', new RegExp(`header x-fake-${name}: expected`));
    });
  }

  it('rejects bad path values naming the behaviour', () => {
    const r = parseBehaviour({}, 'chunks=2,status=abc', defaults);
    assert.equal(r.error?.name, 'status');
    assert.equal(r.error?.source, 'path');
    assert.equal(r.error?.param, '/fake/status');
    assert.match(r.error?.message ?? '', /"abc" for status in the \/fake\/ path segment/);
    assert.equal(parseBehaviour({}, 'chunks', defaults).error?.name, 'chunks', 'a name without =value');
  });

  it('rejects unknown x-fake-* headers and unknown path names', () => {
    const h = parseBehaviour({ 'x-fake-chunk': '3' }, undefined, defaults);
    assert.equal(h.error?.param, 'x-fake-chunk');
    assert.match(h.error?.message ?? '', /unknown behaviour header x-fake-chunk \(known: status,/);
    const p = parseBehaviour({}, 'bogus=1', defaults);
    assert.equal(p.error?.name, 'bogus');
    assert.equal(p.error?.source, 'path');
  });

  it('rejects a repeated header (Node joins the values)', () => {
    const r = parseBehaviour({ 'x-fake-chunks': ['2', '3'] }, undefined, defaults);
    assert.equal(r.error?.value, '2, 3');
  });

  it('reports a header error even when the path is valid', () => {
    const r = parseBehaviour({ 'x-fake-chunks': '0' }, 'chunks=2', defaults);
    assert.equal(r.error?.source, 'header');
  });
});

describe('resolveDefaults / parseBehaviourOptions', () => {
  it('merges programmatic defaults and validates them', () => {
    const b = resolveDefaults({ chunks: 2, retryAfter: '3', failRate: 0.5, usage: false });
    assert.equal(b.chunks, 2);
    assert.equal(b.retryAfter, '3');
    assert.equal(b.failRate, 0.5);
    assert.equal(b.usage, false);
    assert.equal(b.failStatus, 503);
    assert.throws(() => resolveDefaults({ chunks: 0 }), /invalid default chunks=0: expected an integer/);
    assert.throws(() => resolveDefaults({ failRate: 2 }), /failRate/);
    assert.throws(
      () => resolveDefaults({ nope: 1 } as Partial<Behaviour>),
      /unknown behaviour default "nope"/,
    );
  });

  it('parses CLI-style values by name', () => {
    assert.deepEqual(
      parseBehaviourOptions({ chunks: '3', 'chunk-gap-ms': '10', usage: 'false', 'retry-after': '1.5' }),
      {
        chunks: 3,
        chunkGapMs: 10,
        usage: false,
        retryAfter: '1.5',
      },
    );
    assert.throws(
      () => parseBehaviourOptions({ 'fail-rate': 'lots' }),
      /--fail-rate: expected a number 0\.\.1/,
    );
    assert.throws(() => parseBehaviourOptions({ bogus: '1' }), /unknown behaviour --bogus/);
  });

  it('lists every behaviour name', () => {
    assert.deepEqual(BEHAVIOUR_NAMES, [
      'status',
      'retry-after',
      'retry-after-ms',
      'headers-delay-ms',
      'first-chunk-delay-ms',
      'chunks',
      'chunk-gap-ms',
      'chunk-size',
      'stall-after',
      'disconnect-after',
      'usage',
      'fail-rate',
      'fail-status',
      'fail-first',
      'error-code',
      'tag',
    ]);
  });
});
