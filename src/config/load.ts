/**
 * Config loading: parse YAML, interpolate `${ENV}`, validate against the closed schema, check
 * cross-references and the timeout ladder, fill defaults, deep-freeze. Every failure is a
 * ConfigError whose `path` names the bad field (`models.gpt-4o.deployments[0].provider`).
 */
import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { checkPassthrough } from '../routing/passthrough-rules.ts';
import { queueCapacities } from './capacity.ts';
import { DEFAULTS } from './defaults.ts';
import { deepFreeze } from './freeze.ts';
import { type Env, InterpolationError, interpolateTree, type SchemaNode } from './interpolate.ts';
import { ConfigError } from './load-error.ts';
import { joinPath } from './path.ts';
import { type Config, type ConfigInput, ConfigSchema, type Timeouts, type TimeoutsConfig } from './schema.ts';
import { closestName } from './suggest.ts';
import { parseYaml } from './yaml.ts';

export { ConfigError };

// `verbose` keeps the failing schema in an error, for the message of an unknown name; it costs
// nothing until validation fails. Compiling the schema takes 150-250 ms, so it is done on the
// first validation, not on import: a server started from a file imports this module but
// validates only in the loader thread. Code optimisation is off: it made compiling ~75 ms
// slower, on every load (each loader thread compiles anew), and saved at most a few ms of
// validating 10,000 tenants.
let validator: ValidateFunction<ConfigInput> | undefined;
const validate = (doc: unknown): doc is ConfigInput => {
  validator ??= new Ajv({
    allErrors: false,
    useDefaults: true,
    strict: false,
    coerceTypes: false,
    verbose: true,
    code: { optimize: false },
  }).compile<ConfigInput>(ConfigSchema);
  return validator(doc);
};

export async function loadConfigFile(file: string, env: Env): Promise<Config> {
  return deepFreeze(await checkConfigFile(file, env));
}

/**
 * loadConfigFile without the deep freeze, for the loader thread (load-worker.ts): freezing does
 * not survive the trip to the main thread, which freezes what it receives.
 */
export async function checkConfigFile(file: string, env: Env): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError('', `cannot read config file ${file}: ${(err as Error).message}`);
  }
  return checkConfig(parseYaml(text), env);
}

export function parseConfig(text: string, env: Env): Config {
  return validateConfig(parseYaml(text), env);
}

export function validateConfig(raw: unknown, env: Env): Config {
  return deepFreeze(checkConfig(raw, env));
}

/** Interpolates, validates, fills defaults and checks references; the result is not frozen. */
function checkConfig(raw: unknown, env: Env): Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('', 'the config must be a YAML mapping with providers, models and tenants');
  }
  let doc: Record<string, unknown>;
  // Paths of values converted from `${VAR}` to a number or boolean, so a range error names the variable.
  const converted = new Map<string, string>();
  try {
    doc = interpolateTree(raw, env, { schema: ConfigSchema as SchemaNode, converted }) as Record<
      string,
      unknown
    >;
  } catch (err) {
    if (err instanceof InterpolationError) throw new ConfigError(err.path, err.reason);
    throw err;
  }
  // Sections are optional in the file; materialise them so ajv fills their defaults.
  doc.server ??= {};
  doc.logging ??= {};
  doc.retry ??= {};
  doc.breaker ??= {};
  doc.queue ??= {};
  doc.requestLog ??= {};
  doc.tracing ??= {};
  materialise(doc.queue, ['shares']);
  doc.limits ??= {};
  materialise(doc.limits, ['redis', 'tokenEstimate', 'worker', 'fleet']);
  materialise((doc.limits as Record<string, unknown>).fleet, ['shares']);
  if (!validate(doc)) throw fromAjvError(validator!.errors![0]!, converted);
  const config = doc as unknown as Config;
  config.timeouts = { ...DEFAULTS.timeouts, ...config.timeouts };
  checkReferences(config);
  return config;
}

/** Adds the named sub-sections (empty) to a mapping, so ajv fills their defaults. */
function materialise(section: unknown, keys: readonly string[]): void {
  if (section === null || typeof section !== 'object' || Array.isArray(section)) return;
  const record = section as Record<string, unknown>;
  for (const key of keys) record[key] ??= {};
}

function checkReferences(config: Config): void {
  for (const [name, provider] of Object.entries(config.providers)) {
    const at = joinPath('providers', name);
    if (provider.baseUrl === undefined) {
      if (provider.kind !== 'fake') throw new ConfigError(`${at}.baseUrl`, 'is required for this kind');
    } else {
      let url: URL;
      try {
        url = new URL(provider.baseUrl);
      } catch {
        throw new ConfigError(`${at}.baseUrl`, 'is not a valid URL');
      }
      if (url.search || url.hash || url.username || url.password) {
        throw new ConfigError(
          `${at}.baseUrl`,
          'must not carry a query, fragment or credentials (use apiKey)',
        );
      }
    }
    checkLadder(mergeTimeouts(config.timeouts, provider.timeouts), `${at}.timeouts`);
  }
  for (const [name, model] of Object.entries(config.models)) {
    if (model.timeouts?.connectTimeoutMs !== undefined) {
      // Connections are pooled per provider origin, so a connect timeout can only be the provider's.
      throw new ConfigError(
        `${joinPath('models', name)}.timeouts.connectTimeoutMs`,
        'is a provider setting (connections are pooled per provider): set it under providers.<name>.timeouts',
      );
    }
    model.deployments.forEach((deployment, i) => {
      const at = `${joinPath('models', name)}.deployments[${i}].provider`;
      const provider = config.providers[deployment.provider];
      if (!provider) throw new ConfigError(at, `unknown provider "${deployment.provider}"`);
      const ladder = mergeTimeouts(config.timeouts, provider.timeouts, model.timeouts);
      checkLadder(ladder, `${joinPath('models', name)}.timeouts`);
    });
  }
  for (const [name, model] of Object.entries(config.models)) {
    (model.fallbacks ?? []).forEach((fallback, i) => {
      const at = `${joinPath('models', name)}.fallbacks[${i}]`;
      if (!config.models[fallback]) throw new ConfigError(at, `unknown model "${fallback}"`);
      if (fallback === name) throw new ConfigError(at, 'a model cannot fall back to itself');
    });
    if (model.contextFallback !== undefined) {
      const at = `${joinPath('models', name)}.contextFallback`;
      if (!config.models[model.contextFallback])
        throw new ConfigError(at, `unknown model "${model.contextFallback}"`);
      if (model.contextFallback === name) throw new ConfigError(at, 'a model cannot fall back to itself');
    }
  }
  if (config.retry.baseDelayMs > config.retry.maxDelayMs) {
    throw new ConfigError(
      'retry.baseDelayMs',
      `${config.retry.baseDelayMs} ms is longer than retry.maxDelayMs`,
    );
  }
  checkPassthrough(config);
  checkLimits(config);
  if (config.requestLog.batchRows > config.requestLog.maxBufferedRows) {
    throw new ConfigError(
      'requestLog.batchRows',
      `${config.requestLog.batchRows} rows is more than requestLog.maxBufferedRows`,
    );
  }
  checkShares(config.queue.shares, 'queue.shares');
  queueCapacities(config);
  const owners = new Map<string, string>();
  for (const [name, tenant] of Object.entries(config.tenants)) {
    tenant.keys.forEach((key, i) => {
      const owner = owners.get(key);
      if (owner !== undefined) {
        throw new ConfigError(
          `${joinPath('tenants', name)}.keys[${i}]`,
          `the same key is already given to tenant "${owner}"`,
        );
      }
      owners.set(key, name);
    });
  }
}

function checkLimits(config: Config): void {
  const { limits } = config;
  const knownModel = (name: string, at: string) => {
    if (!config.models[name]) throw new ConfigError(at, `unknown model "${name}"`);
  };
  for (const [name, tenant] of Object.entries(limits.tenants ?? {})) {
    const at = joinPath('limits.tenants', name);
    if (!config.tenants[name]) throw new ConfigError(at, `unknown tenant "${name}"`);
    for (const model of Object.keys(tenant.models ?? {})) knownModel(model, joinPath(`${at}.models`, model));
  }
  for (const name of Object.keys(limits.providers ?? {})) {
    if (!config.providers[name])
      throw new ConfigError(joinPath('limits.providers', name), `unknown provider "${name}"`);
  }
  for (const model of Object.keys(limits.fleet.models ?? {})) {
    knownModel(model, joinPath('limits.fleet.models', model));
  }
  const { batch, standard, critical } = limits.fleet.shares;
  if (batch > standard) throw new ConfigError('limits.fleet.shares.batch', 'must not exceed standard');
  if (standard > critical) throw new ConfigError('limits.fleet.shares.standard', 'must not exceed critical');
}

/** Priority shares must not let a lower class fill more than a higher one. */
function checkShares(shares: { batch: number; standard: number; critical: number }, at: string): void {
  if (shares.batch > shares.standard) throw new ConfigError(`${at}.batch`, 'must not exceed standard');
  if (shares.standard > shares.critical) throw new ConfigError(`${at}.standard`, 'must not exceed critical');
}

/** Narrowest wins: model over provider over the top-level section over the built-in defaults. */
export function mergeTimeouts(...layers: Array<TimeoutsConfig | undefined>): Timeouts {
  const out: Timeouts = { ...DEFAULTS.timeouts };
  for (const layer of layers) if (layer) Object.assign(out, layer);
  return out;
}

const LADDER = ['connectTimeoutMs', 'firstTokenTimeoutMs', 'chunkGapTimeoutMs', 'totalTimeoutMs'] as const;

function checkLadder(t: Timeouts, at: string): void {
  for (let i = 1; i < LADDER.length; i++) {
    const lower = LADDER[i - 1]!;
    const upper = LADDER[i]!;
    if (t[lower] > t[upper]) {
      throw new ConfigError(
        `${at}.${lower}`,
        `${t[lower]} ms is longer than ${upper} (${t[upper]} ms); the ladder is connect <= firstToken <= chunkGap <= total`,
      );
    }
  }
}

function fromAjvError(error: ErrorObject, converted: ReadonlyMap<string, string>): ConfigError {
  const segments = error.instancePath.split('/').slice(1).map(unescapePointer);
  let path = segments.reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : joinPath(acc, seg)), '');
  const params = error.params as Record<string, unknown>;
  let message = error.message ?? 'is invalid';
  if (error.keyword === 'additionalProperties') {
    path = joinPath(path, String(params.additionalProperty));
    const patterns = (error.parentSchema as { patternProperties?: Record<string, unknown> } | undefined)
      ?.patternProperties;
    const known = (error.parentSchema as SchemaNode | undefined)?.properties;
    const guess = known && closestName(String(params.additionalProperty), Object.keys(known));
    message = !patterns
      ? `is not a known setting${guess ? ` (did you mean "${guess}"?)` : ''}`
      : path === 'models'
        ? 'is not a valid model name (1 to 256 characters, no control characters)'
        : 'is not a valid name (letters, digits and . _ : -, at most 128 characters)';
  } else if (error.keyword === 'required') {
    const missing = String(params.missingProperty);
    path = joinPath(path, missing);
    message = `is required${unknownKeyHint(error, missing)}`;
  } else if (error.keyword === 'enum') {
    message = `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  }
  const from = converted.get(path);
  return new ConfigError(path, from === undefined ? message : `${message} (from ${from})`);
}

/**
 * A required key is often there, misspelt, and ajv reports the missing key before the unknown
 * one: name the unknown key too, and suggest the missing key when the two are close.
 */
function unknownKeyHint(error: ErrorObject, missing: string): string {
  const data = error.data;
  const schema = error.parentSchema as SchemaNode | undefined;
  if (data === null || typeof data !== 'object' || Array.isArray(data) || schema?.properties === undefined)
    return '';
  if (schema.additionalProperties !== false || schema.patternProperties !== undefined) return '';
  const unknown = Object.keys(data).filter((key) => !Object.hasOwn(schema.properties!, key));
  if (unknown.length === 0) return '';
  const close = closestName(missing, unknown);
  if (close !== undefined) return ` (found unknown key "${close}": did you mean "${missing}"?)`;
  return ` (found unknown key${unknown.length > 1 ? 's' : ''} ${unknown
    .slice(0, 3)
    .map((key) => JSON.stringify(key))
    .join(', ')}${unknown.length > 3 ? ', ...' : ''})`;
}

function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}
