import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bearerToken, hashKey } from '../../src/auth/keys.ts';

describe('keys', () => {
  it('hashes to sha256:<hex>', () => {
    assert.equal(hashKey('abc'), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
  it('reads a Bearer token, case-insensitively, and rejects anything else', () => {
    assert.equal(bearerToken('Bearer sk-1'), 'sk-1');
    assert.equal(bearerToken('bearer   sk-2  '), 'sk-2');
    for (const bad of [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      'Basic abc',
      'sk-1',
      `Bearer ${'x'.repeat(2000)}`,
    ]) {
      assert.equal(bearerToken(bad), undefined, String(bad));
    }
  });
});
