/**
 * The runtime is the config compiled for the request path: maps instead of records, URLs parsed,
 * key digests indexed, timeouts merged. A request takes one snapshot when it starts and keeps it,
 * so a reload swaps configs atomically between requests and never under one.
 */

import { KeyIndex } from './auth/keys.ts';
import { type ModelCapacity, queueCapacities } from './config/capacity.ts';
import type { Priority } from './config/defaults.ts';
import { eachInTurns } from './config/in-turns.ts';
import { mergeTimeouts } from './config/load.ts';
import type { Config, ProviderConfig, Timeouts } from './config/schema.ts';

export interface ProviderRuntime {
  readonly name: string;
  readonly kind: ProviderConfig['kind'];
  /** e.g. `http://127.0.0.1:9000` */
  readonly origin: string;
  /** e.g. `/v1` (no trailing slash) */
  readonly basePath: string;
  readonly region: string;
  readonly connections: number;
  /** Headers sent on every upstream call, the provider's Authorization included. Never logged. */
  readonly headers: Readonly<Record<string, string>>;
  readonly timeouts: Timeouts;
}

export interface Deployment {
  /** Stable, low-cardinality id used in headers, logs and metric labels: provider/model@region. */
  readonly id: string;
  readonly provider: ProviderRuntime;
  readonly upstreamModel: string;
  readonly weight: number;
  readonly timeouts: Timeouts;
  /** USD per million tokens, for the request log's cost column. */
  readonly pricing: { readonly inputPerMillion: number; readonly outputPerMillion: number } | undefined;
}

export interface ModelRoute {
  readonly name: string;
  readonly deployments: readonly Deployment[];
  /** Models tried in order once this one has no deployment left. */
  readonly fallbacks: readonly string[];
  /** Model tried when a provider says the prompt is too long. */
  readonly contextFallback: string | undefined;
  /** The model-level total timeout (top-level and model settings merged): the request's deadline. */
  readonly totalTimeoutMs: number;
  /** Admission-queue capacity on this instance (src/config/capacity.ts). */
  readonly capacity: ModelCapacity;
}

export interface Tenant {
  readonly name: string;
  readonly priority: Priority;
  /** Keys accepted only from a loopback socket address (the embedded demo tenant). */
  readonly loopbackOnly: boolean;
}

export interface Runtime {
  readonly config: Config;
  readonly providers: ReadonlyMap<string, ProviderRuntime>;
  readonly models: ReadonlyMap<string, ModelRoute>;
  /** Tenant by presented Sluice key. */
  readonly tenants: KeyIndex<Tenant>;
  readonly passthrough: ProviderRuntime | undefined;
  /** Digests of the keys accepted on /admin/*. */
  readonly adminKeys: ReadonlySet<string>;
  /** Admin keys accepted only from a loopback socket address (the embedded demo admin key). */
  readonly adminLoopbackOnly: boolean;
  /** The body of GET /v1/models, rendered once per config. */
  readonly modelList: string;
  readonly loadedAt: Date;
}

export interface CompileOptions {
  /** Base URL of the in-process fake provider, for `kind: fake` providers without a baseUrl. */
  embeddedFakeBaseUrl?: string | undefined;
  /** Tenant by key digest, when already built (compileRuntimeInTurns). */
  tenantsByKeyHash?: ReadonlyMap<string, Tenant>;
}

/**
 * compileRuntime for the running gateway: the tenant index, the only part that grows with the
 * number of tenants, is built a slice of tenants per event-loop turn, so a reload of 50,000
 * tenants does not hold up requests while it compiles.
 */
export async function compileRuntimeInTurns(config: Config, options: CompileOptions = {}): Promise<Runtime> {
  const byKey = new Map<string, Tenant>();
  const tenants = config.tenants;
  await eachInTurns(Object.keys(tenants), (name) => indexTenant(byKey, name, tenants[name]!));
  return compileRuntime(config, { ...options, tenantsByKeyHash: byKey });
}

export function compileRuntime(config: Config, options: CompileOptions = {}): Runtime {
  const providers = new Map<string, ProviderRuntime>();
  for (const [name, p] of Object.entries(config.providers)) {
    const base = p.baseUrl ?? options.embeddedFakeBaseUrl;
    if (base === undefined)
      throw new Error(`provider ${name}: no baseUrl and no embedded fake provider running`);
    const url = new URL(base);
    const headers: Record<string, string> = { 'content-type': 'application/json', ...p.headers };
    if (p.apiKey !== undefined) headers.authorization = `Bearer ${p.apiKey}`;
    providers.set(name, {
      name,
      kind: p.kind,
      origin: url.origin,
      basePath: url.pathname.replace(/\/+$/, ''),
      region: p.region,
      connections: p.connections,
      headers,
      timeouts: mergeTimeouts(config.timeouts, p.timeouts),
    });
  }

  const models = new Map<string, ModelRoute>();
  const capacities = queueCapacities(config);
  for (const [name, m] of Object.entries(config.models)) {
    const deployments = m.deployments.map((d): Deployment => {
      const provider = providers.get(d.provider)!;
      const upstreamModel = d.model ?? name;
      return {
        id: `${provider.name}/${upstreamModel}@${provider.region}`,
        provider,
        upstreamModel,
        weight: d.weight,
        pricing: d.pricing,
        timeouts: mergeTimeouts(config.timeouts, config.providers[d.provider]!.timeouts, m.timeouts),
      };
    });
    models.set(name, {
      name,
      deployments,
      fallbacks: m.fallbacks ?? [],
      contextFallback: m.contextFallback,
      totalTimeoutMs: mergeTimeouts(config.timeouts, m.timeouts).totalTimeoutMs,
      capacity: capacities.get(name)!,
    });
  }

  let tenantsByKeyHash = options.tenantsByKeyHash;
  if (!tenantsByKeyHash) {
    const byKey = new Map<string, Tenant>();
    for (const [name, t] of Object.entries(config.tenants)) indexTenant(byKey, name, t);
    tenantsByKeyHash = byKey;
  }

  const created = Math.floor(Date.now() / 1000);
  const modelList = JSON.stringify({
    object: 'list',
    data: [...models.keys()].map((id) => ({ id, object: 'model', created, owned_by: 'sluice' })),
  });

  return {
    config,
    providers,
    models,
    tenants: new KeyIndex(tenantsByKeyHash),
    passthrough: config.passthrough ? providers.get(config.passthrough.provider) : undefined,
    modelList,
    adminKeys: new Set(config.admin?.keys ?? []),
    adminLoopbackOnly: config.admin?.loopbackOnly === true,
    loadedAt: new Date(),
  };
}

function indexTenant(byKey: Map<string, Tenant>, name: string, t: Config['tenants'][string]): void {
  const tenant: Tenant = { name, priority: t.priority, loopbackOnly: t.loopbackOnly === true };
  for (const key of t.keys) byKey.set(key, tenant);
}

/** True when some provider needs the in-process fake provider (kind fake, no baseUrl). */
export function needsEmbeddedFake(config: Config): boolean {
  return Object.values(config.providers).some((p) => p.kind === 'fake' && p.baseUrl === undefined);
}
