/**
 * Writes config/schema.json from the config schema in src/config/schema.ts (`npm run schema`).
 * test/unit/config-schema-file.test.ts fails when the committed file differs from what this writes.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { jsonSchema } from '../src/config/schema.ts';

export const SCHEMA_FILE = fileURLToPath(new URL('../config/schema.json', import.meta.url));

/** The exact text of config/schema.json: 2-space JSON with a trailing newline. */
export function schemaText(): string {
  return `${JSON.stringify(jsonSchema(), null, 2)}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_FILE, schemaText());
  process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
}
