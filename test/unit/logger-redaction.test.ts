import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/telemetry/logger.ts';

const SECRET = 'sk-live-provider-secret-123';

function capture(): { lines: string[]; stream: { write(line: string): void } } {
  const lines: string[] = [];
  return { lines, stream: { write: (line: string) => void lines.push(line) } };
}

describe('logger redaction', () => {
  it('censors keys in provider configs, header bags and request headers', () => {
    const { lines, stream } = capture();
    const log = createLogger('info', stream);
    log.info({ apiKey: SECRET }, 'top-level apiKey');
    log.info({ provider: { apiKey: SECRET, baseUrl: 'https://x' } }, 'nested apiKey');
    log.info({ headers: { authorization: `Bearer ${SECRET}` } }, 'header bag');
    log.info(
      { upstream: { headers: { authorization: `Bearer ${SECRET}`, 'api-key': SECRET } } },
      'nested header bag',
    );
    log.info({ req: { headers: { authorization: `Bearer ${SECRET}` } } }, 'request');
    log.info({ config: { providers: { openai: { apiKey: SECRET } } } }, 'whole config');
    assert.equal(lines.length, 6);
    for (const line of lines) {
      assert.ok(!line.includes(SECRET), `secret leaked: ${line}`);
      assert.ok(line.includes('[redacted]'), `nothing censored in: ${line}`);
    }
  });

  it('keeps ordinary fields', () => {
    const { lines, stream } = capture();
    createLogger('info', stream).info({ model: 'gpt-4o', status: 200 }, 'request');
    const parsed = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(parsed.model, 'gpt-4o');
    assert.equal(parsed.level, 'info');
  });
});
