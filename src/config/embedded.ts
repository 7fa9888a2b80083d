/**
 * The config `npm start` uses when no --config / SLUICE_CONFIG is given: a gateway on localhost
 * whose models answer from the in-process fake provider, or from OpenAI when OPENAI_API_KEY is
 * set, with one demo tenant. It goes through the same validation as a file.
 */
import { hashKey } from '../auth/keys.ts';
import type { Env } from './interpolate.ts';

/**
 * The demo tenant's key. Only the embedded config accepts it, and only from a loopback socket
 * address (`loopbackOnly`): binding to localhost alone is not enough, a local forwarder or a
 * spoofed X-Forwarded-For must not make it work from elsewhere.
 */
export const DEMO_KEY = 'sk-sluice-demo';
/** The demo admin key (/admin/*), under the same loopback-only condition. */
export const DEMO_ADMIN_KEY = 'sk-sluice-admin-demo';

export function embeddedConfig(env: Env): Record<string, unknown> {
  const openai = env.OPENAI_API_KEY !== undefined && env.OPENAI_API_KEY !== '';
  const real = openai ? 'openai' : 'fake';
  const providers: Record<string, unknown> = { fake: { kind: 'fake', region: 'local' } };
  if (openai) {
    providers.openai = { kind: 'openai', baseUrl: 'https://api.openai.com/v1', apiKey: '${OPENAI_API_KEY}' };
  }
  return {
    server: { host: '127.0.0.1', port: Number(env.SLUICE_PORT ?? 8080) },
    providers,
    models: {
      'gpt-4o-mini': { deployments: [{ provider: real }] },
      'gpt-4o': { deployments: [{ provider: real }] },
      'text-embedding-3-small': { deployments: [{ provider: real }] },
      'fake-model': { deployments: [{ provider: 'fake' }] },
    },
    tenants: { demo: { keys: [hashKey(DEMO_KEY)], priority: 'standard', loopbackOnly: true } },
    admin: { keys: [hashKey(DEMO_ADMIN_KEY)], loopbackOnly: true },
    // No pass-through: it is off unless configured (with OPENAI_API_KEY set it would open the
    // whole OpenAI account's files and batches to the demo key).
  };
}
