import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pickWeighted } from '../../src/routing/select.ts';

describe('pickWeighted', () => {
  const items = [
    { id: 'a', weight: 1 },
    { id: 'b', weight: 3 },
  ];
  it('maps the random point onto the weights', () => {
    assert.equal(pickWeighted(items, () => 0).id, 'a');
    assert.equal(pickWeighted(items, () => 0.24).id, 'a');
    assert.equal(pickWeighted(items, () => 0.26).id, 'b');
    assert.equal(pickWeighted(items, () => 0.999999).id, 'b');
  });
  it('spreads traffic in proportion to weight', () => {
    let seed = 1;
    const rand = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 40_000; i++) counts[pickWeighted(items, rand).id as 'a' | 'b']++;
    const share = counts.b / 40_000;
    assert.ok(Math.abs(share - 0.75) < 0.01, `b got ${share}`);
  });
  it('a single deployment needs no randomness', () => {
    assert.equal(pickWeighted([{ id: 'x', weight: 5 }], () => assert.fail('called')).id, 'x');
  });
});
