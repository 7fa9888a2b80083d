/**
 * `sluice print-config`: the effective config (defaults filled in, `${ENV}` interpolated,
 * command-line overrides applied) as YAML or JSON, with secrets replaced by `[redacted]`, so an
 * operator can see what runs and paste it into a ticket. Redaction goes by name, not by schema
 * path, so a credential in a setting added later is caught too:
 * - string values of settings whose name ends like a credential (apiKey, password, token,
 *   secret...), except key digests (`sha256:...`), which are safe to show and tell which keys
 *   are configured; `keyPrefix` or `charsPerToken` do not end so, or are not strings;
 * - header values whose header name has a credential word in it (authorization, x-api-key,
 *   cookie...);
 * - the password of any URL (`***`, as in the logs) and its credential-like query parameters.
 */
import { dump } from 'js-yaml';
import type { Config } from './schema.ts';

export const REDACTED = '[redacted]';

const CREDENTIAL_SETTING =
  /(key|token|secret|passw(or)?d|auth|authorization|cookie|credentials?|signature)$/i;
const CREDENTIAL_HEADER = /auth|key|token|secret|passw|cookie|credential|session|signature/i;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

export function printConfig(config: Config, format: 'yaml' | 'json', source: string): string {
  const redacted = redact(config, false);
  if (format === 'json') return `${JSON.stringify(redacted, null, 2)}\n`;
  return `# effective config (${source}); defaults filled in, secrets ${REDACTED}\n${dump(redacted, { lineWidth: -1 })}`;
}

/** A redacted copy of a parsed config. `inHeaders`: the values of this mapping are header values. */
export function redact(node: unknown, inHeaders: boolean): unknown {
  if (typeof node === 'string') return redactString(node);
  if (Array.isArray(node)) return node.map((item) => redact(item, false));
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    let copy: unknown;
    if (inHeaders) copy = CREDENTIAL_HEADER.test(key) ? REDACTED : redactString(String(value));
    else if (CREDENTIAL_SETTING.test(key) && isSecretValue(value)) copy = REDACTED;
    else copy = redact(value, key === 'headers');
    // A model may be named `__proto__`: keep it a key.
    Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** A string or strings, not all key digests (`keys: [sha256:...]` stays: digests are not secrets). */
function isSecretValue(value: unknown): boolean {
  if (typeof value === 'string') return !DIGEST.test(value);
  return (
    Array.isArray(value) &&
    value.some((item) => typeof item === 'string') &&
    !value.every((item) => typeof item === 'string' && DIGEST.test(item))
  );
}

function redactString(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return value;
  }
  let changed = false;
  if (url.password) {
    url.password = '***'; // as in the logs; `[redacted]` would be percent-encoded here
    changed = true;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (CREDENTIAL_HEADER.test(name)) {
      url.searchParams.set(name, REDACTED);
      changed = true;
    }
  }
  return changed ? url.toString() : value;
}
