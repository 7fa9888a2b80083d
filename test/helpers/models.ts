/** Builds gateway configs whose deployments are fake-provider behaviours, for resilience tests. */
import { hashKey } from '../../src/auth/keys.ts';
import type { FakeProvider } from '../../src/fake-provider/server.ts';
import { TENANT_KEY } from './harness.ts';

export interface FakeDeployment {
  /**
   * Fake-provider behaviour for this deployment's base URL, e.g. 'status=503'. The deployment's name
   * is added as the tag, so `fake.stats.byBehaviour[name]` counts its calls.
   */
  behaviour?: string;
  weight?: number;
  region?: string;
  timeouts?: Record<string, number>;
  /** Use this base URL instead of the fake provider. */
  baseUrl?: string;
}

export interface FakeModel {
  deployments: Record<string, FakeDeployment>;
  fallbacks?: string[];
  contextFallback?: string;
  timeouts?: Record<string, number>;
}

/** The behaviour key the fake provider counts requests under for deployment `name`. */
export const behaviourKey = (name: string, behaviour = '') =>
  behaviour ? `${behaviour},tag=${name}` : `tag=${name}`;

export function fakeModels(
  fake: FakeProvider,
  models: Record<string, FakeModel>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const providers: Record<string, unknown> = {};
  const out: Record<string, unknown> = {};
  for (const [modelName, model] of Object.entries(models)) {
    const deployments = Object.entries(model.deployments).map(([name, d]) => {
      providers[name] = {
        kind: 'openai',
        baseUrl: d.baseUrl ?? `${fake.origin}/fake/${d.behaviour ? `${d.behaviour},` : ''}tag=${name}/v1`,
        region: d.region ?? name,
        connections: 16,
        ...(d.timeouts ? { timeouts: d.timeouts } : {}),
      };
      return { provider: name, model: modelName, weight: d.weight ?? 1 };
    });
    out[modelName] = {
      deployments,
      ...(model.fallbacks ? { fallbacks: model.fallbacks } : {}),
      ...(model.contextFallback ? { contextFallback: model.contextFallback } : {}),
      ...(model.timeouts ? { timeouts: model.timeouts } : {}),
    };
  }
  return { providers, models: out, tenants: { acme: { keys: [hashKey(TENANT_KEY)] } }, ...extra };
}

/** Weights that make the first pick all but certain (the other is chosen with p ~ 1e-12). */
export const FIRST = 1_000_000;
export const LAST = 0.000001;
