/**
 * Test harness: a real fake provider and a real gateway, both listening on port 0 on loopback.
 * Logs are captured as parsed JSON lines so tests can assert what was (and was not) logged.
 */

import { buildApp, type Gateway } from '../../src/app.ts';
import { hashKey } from '../../src/auth/keys.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { Behaviour } from '../../src/fake-provider/behaviour.ts';
import { type FakeProvider, startFakeProvider } from '../../src/fake-provider/server.ts';
import type { RequestLog } from '../../src/requestlog/request-log.ts';
import { compileRuntime } from '../../src/runtime.ts';
import { createLoggers } from '../../src/telemetry/logger.ts';
import type { Tracing } from '../../src/telemetry/tracing.ts';

export const TENANT_KEY = 'sk-test-acme-0123456789';
export const OTHER_TENANT_KEY = 'sk-test-batch-0123456789';
export const PROVIDER_KEY = 'sk-provider-secret-do-not-leak';

export interface Harness {
  /** Gateway origin, e.g. http://127.0.0.1:40123 */
  readonly url: string;
  /** Gateway base URL for SDKs: url + '/v1' */
  readonly baseURL: string;
  readonly fake: FakeProvider;
  readonly gateway: Gateway;
  /** Every log line written so far, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** The raw log text, for leak checks. */
  rawLogs(): string;
  /** Headers for an authenticated JSON request. */
  headers(extra?: Record<string, string>): Record<string, string>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Extra or replacement top-level config sections; providers/models get the fake's URL from `fake`. */
  config?: (fake: FakeProvider) => Record<string, unknown>;
  fakeDefaults?: Partial<Behaviour>;
  /** Rows of each request go here (the test opens and closes it). */
  requestLog?: RequestLog;
  /** OpenTelemetry tracing (the test creates and shuts it down). */
  tracing?: Tracing;
}

export function baseConfig(fake: FakeProvider): Record<string, unknown> {
  return {
    logging: { level: 'info' },
    providers: {
      fake: { kind: 'openai', baseUrl: fake.baseUrl, apiKey: PROVIDER_KEY, region: 'local', connections: 32 },
    },
    models: {
      'test-model': { deployments: [{ provider: 'fake', model: 'upstream-test-model' }] },
      'text-embedding-test': { deployments: [{ provider: 'fake' }] },
    },
    tenants: {
      acme: { keys: [hashKey(TENANT_KEY)], priority: 'critical' },
      batchco: { keys: [hashKey(OTHER_TENANT_KEY)], priority: 'batch' },
    },
    // Files only, for acme only: what other tests pass through (test/integration/passthrough.test.ts
    // covers the rules themselves).
    passthrough: {
      provider: 'fake',
      tenants: ['acme'],
      routes: [
        { path: '/files', methods: ['GET', 'POST'] },
        { path: '/files/*', methods: ['GET', 'DELETE'] },
      ],
    },
  };
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const fake = await startFakeProvider({ host: '127.0.0.1', port: 0, defaults: options.fakeDefaults ?? {} });
  let config: ReturnType<typeof validateConfig>;
  try {
    const raw = options.config ? options.config(fake) : baseConfig(fake);
    config = validateConfig(
      { ...raw, server: { host: '127.0.0.1', port: 0, ...(raw.server as object) } },
      {},
    );
  } catch (err) {
    // A bad test config fails the test; an open fake provider would hang the run instead.
    await fake.close();
    throw err;
  }
  const lines: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const loggers = createLoggers(config.logging.level, {
    write(line: string) {
      lines.push(line);
      logs.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  const gateway = await buildApp(compileRuntime(config), {
    logger: loggers.log,
    accessLogger: loggers.access,
    requestLog: options.requestLog,
    tracing: options.tracing,
  });
  const url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  return {
    url,
    baseURL: `${url}/v1`,
    fake,
    gateway,
    logs,
    rawLogs: () => lines.join(''),
    headers: (extra = {}) => ({
      authorization: `Bearer ${TENANT_KEY}`,
      'content-type': 'application/json',
      ...extra,
    }),
    async close() {
      await gateway.shutdown(1_000);
      await fake.close();
    },
  };
}

/** Resolves when `predicate` holds, polling every `intervalMs`; rejects after `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean,
  timeoutMs = 5_000,
  what = 'condition',
  intervalMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const chatBody = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'hello' }], ...extra });

/**
 * Providers like the harness's `fake`, each on the same fake provider with a behaviour path
 * segment (e.g. `{ bad: 'status=400,tag=bad' }` -> `<origin>/fake/status=400,tag=bad/v1`).
 */
export function behaviourProviders(
  fake: FakeProvider,
  behaviours: Record<string, string>,
): Record<string, Record<string, unknown>> {
  const base = (baseConfig(fake).providers as Record<string, Record<string, unknown>>).fake!;
  const origin = fake.baseUrl.replace(/\/v1$/, '');
  return Object.fromEntries(
    Object.entries(behaviours).map(([name, path]) => [
      name,
      { ...base, baseUrl: `${origin}/fake/${path}/v1` },
    ]),
  );
}
