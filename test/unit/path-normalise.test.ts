import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_PATH_LENGTH, normalisePath } from '../../src/server/path-normalise.ts';

const ok = (raw: string) => {
  const n = normalisePath(raw);
  assert.ok(n.ok, `${raw} was refused: ${n.ok ? '' : n.reason}`);
  return n.path;
};
const refused = (raw: string) => {
  const n = normalisePath(raw);
  assert.ok(!n.ok, `${raw} was accepted as ${n.ok ? n.path : ''}`);
};

describe('normalisePath', () => {
  it('keeps canonical paths as they are', () => {
    assert.equal(ok('/files'), '/files');
    assert.equal(ok('/files/file-AbC_123/content'), '/files/file-AbC_123/content');
    assert.equal(ok('/models/ft:gpt-4o-mini:org:suffix:abc'), '/models/ft:gpt-4o-mini:org:suffix:abc');
    assert.deepEqual((normalisePath('/batches/b1/cancel') as { segments?: readonly string[] }).segments, [
      'batches',
      'b1',
      'cancel',
    ]);
  });

  it('collapses empty segments and drops the trailing slash', () => {
    assert.equal(ok('//chat//completions/'), '/chat/completions');
    assert.equal(ok('/files///'), '/files');
    assert.equal(ok('/'), '/');
  });

  it('decodes percent-encoded ordinary characters', () => {
    assert.equal(ok('/chat/%63ompletions'), '/chat/completions');
    assert.equal(ok('/%66%69%6C%65%73'), '/files');
  });

  it('keeps case (ids are case-sensitive)', () => {
    assert.equal(ok('/Chat/Completions'), '/Chat/Completions');
  });

  it('refuses dot segments, raw or encoded', () => {
    for (const raw of [
      '/files/../chat/completions',
      '/./chat/completions',
      '/files/%2e%2e/chat',
      '/files/%2E%2E',
      '/files/.%2e/x',
      '/files/%2e',
      '/..',
    ]) {
      refused(raw);
    }
  });

  it('refuses encoded separators, backslashes, path parameters and double encoding', () => {
    for (const raw of [
      '/chat%2Fcompletions',
      '/chat%2fcompletions',
      '/files\\..\\chat',
      '/files/a%5Cb',
      '/chat/completions;x',
      '/chat/completions%3Bx',
      '/files;v=1/x',
      '/files/%252e%252e',
      '/files/%252F',
    ]) {
      refused(raw);
    }
  });

  it('refuses malformed encoding, controls, spaces and non-ASCII', () => {
    for (const raw of [
      '/files/%zz',
      '/files/%',
      '/files/%e2%82',
      '/a%00b',
      '/a%20b',
      '/a%0Ab',
      '/caf%C3%A9',
    ]) {
      refused(raw);
    }
  });

  it('refuses a path that does not start with / or is too long', () => {
    refused('files');
    refused('');
    refused(`/${'a'.repeat(MAX_PATH_LENGTH)}`);
    assert.equal(ok(`/${'a'.repeat(MAX_PATH_LENGTH - 1)}`).length, MAX_PATH_LENGTH);
  });
});
