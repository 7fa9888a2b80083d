/**
 * `${VAR}` and `${VAR:-fallback}` interpolation in the string values of a parsed config, so a
 * secret with YAML-significant characters (`#`, `: `) cannot change the document's shape.
 * `$${` escapes a literal `${`. A missing variable without a fallback is an error naming the
 * variable and the config path, never a silent empty string (an empty API key would only fail
 * later, upstream).
 *
 * Environment variables are strings, so an interpolated value in a field the schema declares
 * integer, number or boolean is converted (`port: ${PORT}`): strictly (`8080`, `-1`, `0.5`,
 * `true`, `false`; no blanks, no `0x`), else an error naming the field and the variables. A string
 * written without `${` is never converted: the schema stays strict about what the file says.
 */
import { joinPath } from './path.ts';

const PATTERN = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export type Env = Readonly<Record<string, string | undefined>>;

export class InterpolationError extends Error {
  readonly path: string;
  /** The message without the path. */
  readonly reason: string;
  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.path = path;
    this.reason = reason;
  }
}

const notSet = (variable: string, path: string) =>
  new InterpolationError(
    path,
    `environment variable ${variable} is not set; set it or write \${${variable}:-default}`,
  );

/** The part of a JSON Schema the walk reads to find the declared type of a value. */
export interface SchemaNode {
  readonly type?: string;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly patternProperties?: Readonly<Record<string, SchemaNode>>;
  readonly additionalProperties?: boolean | SchemaNode;
  readonly items?: SchemaNode;
}

export interface InterpolateOptions {
  /** The schema of the tree: interpolated values in integer/number/boolean fields are converted. */
  readonly schema?: SchemaNode;
  /** Filled with path -> the `${...}` references of each converted value, for later errors. */
  readonly converted?: Map<string, string>;
}

export function interpolateString(value: string, env: Env, path: string): string {
  if (!value.includes('${')) return value;
  return value.replace(PATTERN, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    const found = env[name!];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return fallback;
    throw notSet(name!, path);
  });
}

/**
 * Returns a copy of `node` with every string value interpolated. Keys are left as written. The
 * config path is kept as segments and joined only for an error: a config of 50,000 tenants has
 * half a million values, and a path string per value doubled this walk's time.
 */
export function interpolateTree(node: unknown, env: Env, options: InterpolateOptions = {}): unknown {
  const path: Array<string | number> = [];
  const walk = (value: unknown, schema: SchemaNode | undefined): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('${')) return value;
      const at = pathString(path) || '(root)';
      const text = interpolateString(value, env, at);
      const type = schema?.type;
      if (type !== 'integer' && type !== 'number' && type !== 'boolean') return text;
      const refs = references(value);
      if (refs === '') return text; // only `$${` escapes: nothing came from the environment
      const converted = convert(text, type);
      if (converted === undefined) {
        throw new InterpolationError(
          at,
          `${refs} gave ${JSON.stringify(text)}, which is not ${ARTICLE[type]}`,
        );
      }
      options.converted?.set(at, refs);
      return converted;
    }
    if (Array.isArray(value)) {
      const out: unknown[] = [];
      const item = schema?.items;
      for (let i = 0; i < value.length; i++) {
        path.push(i);
        out.push(walk(value[i], item));
        path.pop();
      }
      return out;
    }
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(value)) {
        path.push(key);
        const copy = walk((value as Record<string, unknown>)[key], schema && childSchema(schema, key));
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
  return walk(node, options.schema);
}

const ARTICLE = { integer: 'an integer', number: 'a number', boolean: 'true or false' } as const;

/** Strict: what a person would write in YAML for the number, never `''`, ` 1`, `0x10` or `1e3` for an integer. */
function convert(text: string, type: 'integer' | 'number' | 'boolean'): number | boolean | undefined {
  if (type === 'boolean') return text === 'true' ? true : text === 'false' ? false : undefined;
  const ok = type === 'integer' ? /^[-+]?\d+$/ : /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
  if (!ok.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) && (type === 'number' || Number.isSafeInteger(n)) ? n : undefined;
}

/** `${PORT}` or `${A}, ${B}`: the variables a value names, for an error message. */
function references(raw: string): string {
  const names: string[] = [];
  for (const m of raw.matchAll(PATTERN)) if (m[1] !== undefined) names.push(`\${${m[1]}}`);
  return names.join(', ');
}

/**
 * The schema of a mapping's value at `key`: a named property, else a map's value schema (a
 * Type.Record has one pattern; its key is checked by ajv, not here), else additionalProperties.
 */
function childSchema(schema: SchemaNode, key: string): SchemaNode | undefined {
  // hasOwn: a model named `constructor` must not find Object.prototype's.
  if (schema.properties !== undefined && Object.hasOwn(schema.properties, key)) return schema.properties[key];
  if (schema.patternProperties !== undefined) {
    for (const pattern in schema.patternProperties) return schema.patternProperties[pattern];
  }
  return typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
}

function pathString(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const seg of path) out = typeof seg === 'number' ? `${out}[${seg}]` : joinPath(out, seg);
  return out;
}
