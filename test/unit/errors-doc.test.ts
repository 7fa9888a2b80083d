import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERROR_CATALOG } from '../../src/errors/catalog.ts';

const DOC = new URL('../../docs/errors.md', import.meta.url);

interface Row {
  code: string;
  status: number | 'provider';
  type: string;
}

/** The rows of the table under `## Codes` in docs/errors.md. */
function documentedRows(): Row[] {
  const lines = readFileSync(DOC, 'utf8').split('\n');
  const start = lines.findIndex((line) => /^##\s+Codes\s*$/.test(line));
  assert.notEqual(start, -1, 'docs/errors.md has no "## Codes" section');
  const rows: Row[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^#{1,6}\s/.test(line)) break;
    if (!line.startsWith('|')) continue;
    const cells = line
      .slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined)
      .split('|')
      .map((cell) => cell.trim());
    if (cells[0] === 'Code' || cells.every((cell) => /^:?-+:?$/.test(cell))) continue;
    const [code, status, type] = cells.map((cell) => cell.replace(/^`|`$/g, ''));
    assert.ok(code && status && type, `malformed table row in docs/errors.md: ${line}`);
    // A pass-through code's status and type are the provider's, and the doc says so.
    if (status === "provider's" && type === "provider's") {
      rows.push({ code, status: 'provider', type: 'provider' });
      continue;
    }
    assert.match(status, /^\d{3}$/, `status of ${code} in docs/errors.md is not an HTTP status`);
    rows.push({ code, status: Number(status), type });
  }
  return rows;
}

describe('docs/errors.md', () => {
  const rows = documentedRows();

  it('lists each code once', () => {
    const seen = new Set<string>();
    for (const { code } of rows) {
      assert.ok(!seen.has(code), `${code} is listed twice in docs/errors.md`);
      seen.add(code);
    }
  });

  it('lists exactly the codes of ERROR_CATALOG', () => {
    const documented = new Set(rows.map((r) => r.code));
    const catalog = new Set(Object.keys(ERROR_CATALOG));
    const undocumented = [...catalog].filter((code) => !documented.has(code));
    const unknown = [...documented].filter((code) => !catalog.has(code));
    assert.deepEqual(
      { undocumented, unknown },
      { undocumented: [], unknown: [] },
      'docs/errors.md and src/errors/catalog.ts disagree: `undocumented` codes are in the catalog ' +
        'but not the doc table, `unknown` codes are in the doc table but not the catalog',
    );
  });

  it('gives each code the status and type of the catalog', () => {
    const catalog: Record<string, { status: number; type: string; passthrough?: true }> = ERROR_CATALOG;
    for (const { code, status, type } of rows) {
      const entry = catalog[code];
      if (!entry) continue; // reported by the test above
      const expected = entry.passthrough
        ? { code, status: 'provider', type: 'provider' }
        : { code, status: entry.status, type: entry.type };
      assert.deepEqual({ code, status, type }, expected);
    }
  });
});
