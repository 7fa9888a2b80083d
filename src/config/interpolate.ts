/**
 * `${VAR}` and `${VAR:-fallback}` interpolation in the string values of a parsed config, so a
 * secret with YAML-significant characters (`#`, `: `) cannot change the document's shape.
 * `$${` escapes a literal `${`. A missing variable without a fallback is an error naming the
 * variable and the config path, never a silent empty string (an empty API key would only fail
 * later, upstream).
 */
import { joinPath } from './path.ts';

const PATTERN = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export type Env = Readonly<Record<string, string | undefined>>;

export class InterpolationError extends Error {
  readonly path: string;
  constructor(variable: string, path: string) {
    super(`${path}: environment variable ${variable} is not set; set it or write \${${variable}:-default}`);
    this.path = path;
  }
}

export function interpolateString(value: string, env: Env, path: string): string {
  if (!value.includes('${')) return value;
  return value.replace(PATTERN, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    const found = env[name!];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return fallback;
    throw new InterpolationError(name!, path);
  });
}

/** Returns a copy of `node` with every string value interpolated. Keys are left as written. */
export function interpolateTree(node: unknown, env: Env, path = ''): unknown {
  if (typeof node === 'string') return interpolateString(node, env, path || '(root)');
  if (Array.isArray(node)) return node.map((item, i) => interpolateTree(item, env, `${path}[${i}]`));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      out[key] = interpolateTree(value, env, joinPath(path, key));
    }
    return out;
  }
  return node;
}
