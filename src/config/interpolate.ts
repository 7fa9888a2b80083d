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

/**
 * Returns a copy of `node` with every string value interpolated. Keys are left as written. The
 * config path is kept as segments and joined only for an error: a config of 50,000 tenants has
 * half a million values, and a path string per value doubled this walk's time.
 */
export function interpolateTree(node: unknown, env: Env): unknown {
  const path: Array<string | number> = [];
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('${')) return value;
      return interpolateString(value, env, pathString(path) || '(root)');
    }
    if (Array.isArray(value)) {
      const out: unknown[] = [];
      for (let i = 0; i < value.length; i++) {
        path.push(i);
        out.push(walk(value[i]));
        path.pop();
      }
      return out;
    }
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(value)) {
        path.push(key);
        const copy = walk((value as Record<string, unknown>)[key]);
        // A model may be named anything: `__proto__` must stay a key, not set the prototype.
        if (key === '__proto__') {
          Object.defineProperty(out, key, {
            value: copy,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else out[key] = copy;
        path.pop();
      }
      return out;
    }
    return value;
  };
  return walk(node);
}

function pathString(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const seg of path) out = typeof seg === 'number' ? `${out}[${seg}]` : joinPath(out, seg);
  return out;
}
