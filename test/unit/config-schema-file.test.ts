import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SCHEMA_FILE, schemaText } from '../../scripts/write-schema.ts';

describe('config/schema.json', () => {
  it('is exactly what jsonSchema() produces now', () => {
    let committed: string;
    try {
      committed = readFileSync(SCHEMA_FILE, 'utf8');
    } catch (err) {
      assert.fail(`cannot read ${SCHEMA_FILE} (${(err as Error).message}); run \`npm run schema\``);
    }
    const expected = schemaText();
    if (committed === expected) return;
    // Same JSON but different text (hand-formatted) still counts as drift: the file is generated.
    assert.deepEqual(
      JSON.parse(committed),
      JSON.parse(expected),
      'config/schema.json is out of date with src/config/schema.ts; run `npm run schema` and commit the result',
    );
    assert.fail('config/schema.json is not formatted as `npm run schema` writes it; run `npm run schema`');
  });
});
