/**
 * Which pass-through requests are allowed: the `passthrough.routes` patterns, their methods and
 * their tenants, and the inference paths that are never passed through whatever the config says.
 * Pure: it sees canonical path segments (src/server/path-normalise.ts), a method and a tenant name.
 *
 * Pattern syntax, segment by segment, relative to /v1 (no regular expressions from config):
 *   - a literal segment matches itself exactly (case-sensitive): `/files`, `/batches`;
 *   - `*` matches exactly one segment: `/files/*` matches `/files/file-abc`, not `/files`;
 *   - `**`, only as the last segment, matches one or more segments: `/files/**` matches
 *     `/files/file-abc` and `/files/file-abc/content`, not `/files`.
 */
import { ConfigError } from '../config/load-error.ts';
import { type Config, PASSTHROUGH_METHODS, type PassthroughConfig } from '../config/schema.ts';

/**
 * Inference paths (relative to /v1): the gateway serves them itself, metered (or will:
 * `/responses` and `/messages`), so neither they nor anything under them is ever passed through,
 * in any spelling or with any method. Under them live stored completions and responses, which
 * belong to the whole provider account, not to the tenant asking.
 */
export const INFERENCE_PATHS = [
  '/chat/completions',
  '/completions',
  '/embeddings',
  '/responses',
  '/messages',
] as const;
const INFERENCE_SEGMENTS = INFERENCE_PATHS.map((path) => path.slice(1).split('/'));

/** The inference path `segments` equal (`exact`) or lie under, compared case-insensitively. */
export function inferencePath(
  segments: readonly string[],
): { readonly path: string; readonly exact: boolean } | undefined {
  for (let i = 0; i < INFERENCE_SEGMENTS.length; i++) {
    const reserved = INFERENCE_SEGMENTS[i]!;
    if (segments.length < reserved.length) continue;
    let hit = true;
    for (let j = 0; j < reserved.length && hit; j++) {
      const segment = segments[j]!;
      hit = segment.length === reserved[j]!.length && segment.toLowerCase() === reserved[j];
    }
    if (hit) return { path: INFERENCE_PATHS[i]!, exact: segments.length === reserved.length };
  }
  return undefined;
}

export type PassthroughMatch =
  | { readonly kind: 'allowed'; readonly route: string }
  /** The path is allowed to this tenant, not with this method; `allow` is the `allow` header. */
  | { readonly kind: 'method_not_allowed'; readonly allow: string }
  | { readonly kind: 'not_found' };

interface Rule {
  readonly tokens: readonly string[];
  readonly methods: ReadonlySet<string>;
  readonly tenants: ReadonlySet<string>;
  /** The pattern under /v1, e.g. `/v1/files/*`: the request log's and the metrics' route. */
  readonly route: string;
}

const NOT_FOUND: PassthroughMatch = { kind: 'not_found' };

/** A validated `passthrough` section compiled for matching (checkPassthrough ran at load). */
export class PassthroughRules {
  readonly #rules: readonly Rule[];

  constructor(section: PassthroughConfig) {
    this.#rules = section.routes.map((route) => ({
      tokens: route.path.slice(1).split('/'),
      methods: new Set(route.methods),
      tenants: new Set(route.tenants ?? section.tenants ?? []),
      route: `/v1${route.path}`,
    }));
  }

  /**
   * The first rule that matches the path, is open to the tenant and lists the method allows the
   * request. A path no rule opens to this tenant is not found, even when another tenant may use
   * it: a tenant learns nothing about what others are allowed.
   */
  match(segments: readonly string[], method: string, tenant: string): PassthroughMatch {
    let allowed: Set<string> | undefined;
    for (const rule of this.#rules) {
      if (!rule.tenants.has(tenant) || !matches(rule.tokens, segments)) continue;
      if (rule.methods.has(method)) return { kind: 'allowed', route: rule.route };
      allowed ??= new Set();
      for (const m of rule.methods) allowed.add(m);
    }
    if (!allowed) return NOT_FOUND;
    return {
      kind: 'method_not_allowed',
      allow: PASSTHROUGH_METHODS.filter((m) => allowed.has(m)).join(', '),
    };
  }
}

function matches(tokens: readonly string[], segments: readonly string[]): boolean {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token === '**') return segments.length > i;
    if (i >= segments.length) return false;
    if (token !== '*' && token !== segments[i]) return false;
  }
  return tokens.length === segments.length;
}

/** Reference and pattern checks of the `passthrough` section, at load; errors name the field. */
export function checkPassthrough(config: Config): void {
  const section = config.passthrough;
  if (!section) return;
  if (!config.providers[section.provider]) {
    throw new ConfigError('passthrough.provider', `unknown provider "${section.provider}"`);
  }
  const knownTenants = (names: readonly string[] | undefined, at: string) => {
    names?.forEach((name, i) => {
      if (!config.tenants[name]) throw new ConfigError(`${at}[${i}]`, `unknown tenant "${name}"`);
    });
  };
  knownTenants(section.tenants, 'passthrough.tenants');
  section.routes.forEach((route, i) => {
    const at = `passthrough.routes[${i}]`;
    const problem = patternProblem(route.path);
    if (problem) throw new ConfigError(`${at}.path`, problem);
    if (route.tenants === undefined && section.tenants === undefined) {
      throw new ConfigError(`${at}.tenants`, 'is required when passthrough.tenants is not set');
    }
    knownTenants(route.tenants, `${at}.tenants`);
  });
}

/** What is wrong with a pattern the schema's regex accepted, if anything. */
export function patternProblem(path: string): string | undefined {
  const tokens = path.slice(1).split('/');
  const rest = tokens.indexOf('**');
  if (rest >= 0 && rest !== tokens.length - 1) return '`**` may only be the last segment';
  for (let i = 0; i < INFERENCE_SEGMENTS.length; i++) {
    if (reaches(tokens, INFERENCE_SEGMENTS[i]!)) {
      return `could match ${INFERENCE_PATHS[i]} (or a path under it), an inference path, which is never passed through`;
    }
  }
  return undefined;
}

/** Can the pattern match `reserved` or a path under it? Literals compare case-insensitively. */
function reaches(tokens: readonly string[], reserved: readonly string[]): boolean {
  for (let i = 0; i < reserved.length; i++) {
    const token = tokens[i];
    if (token === undefined) return false;
    if (token === '**') return true;
    if (token !== '*' && token.toLowerCase() !== reserved[i]) return false;
  }
  return true;
}
