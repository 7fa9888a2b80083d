/**
 * Redis key names. Every key a single script call touches carries the same hash tag (`{...}`), so
 * the call works on Redis Cluster: a tenant's buckets and its in-flight set share `{t:<tenant>}`,
 * a model's fleet set has `{f:<model>}`, a provider's budget `{p:<provider>}`. Model names may hold
 * any character, so they are URI-encoded (no `{` or `}` can end a tag early).
 */
export interface LimitKeys {
  tenant(tenant: string, kind: 'requests' | 'tokens'): string;
  tenantModel(tenant: string, model: string, kind: 'requests' | 'tokens'): string;
  tenantInFlight(tenant: string): string;
  fleetInFlight(model: string): string;
  provider(provider: string, kind: 'requests' | 'tokens'): string;
  readonly instances: string;
}

export function limitKeys(prefix: string): LimitKeys {
  return {
    tenant: (tenant, kind) => `${prefix}:{t:${tenant}}:${kind}`,
    tenantModel: (tenant, model, kind) => `${prefix}:{t:${tenant}}:m:${encodeURIComponent(model)}:${kind}`,
    tenantInFlight: (tenant) => `${prefix}:{t:${tenant}}:inflight`,
    fleetInFlight: (model) => `${prefix}:{f:${encodeURIComponent(model)}}:inflight`,
    provider: (provider, kind) => `${prefix}:{p:${provider}}:${kind}`,
    instances: `${prefix}:instances`,
  };
}
