#!/usr/bin/env node
/**
 * The command line: parse it and run one command. The gateway itself (`start`, the default) is
 * src/serve.ts.
 *
 *   sluice [--config FILE] [--port N]  start the gateway (embedded defaults without a config)
 *   sluice check-config FILE        validate a config file and exit
 *   sluice print-config [--config FILE] [--port N] [--format yaml|json]
 *                                   print the effective config, secrets redacted
 *   sluice hash-key KEY             print the digest to put in tenants.<name>.keys
 *   sluice migrate [--config FILE]  apply the request log's pending migrations and exit
 */
import { parseArgs } from 'node:util';
import { hashKey } from './auth/keys.ts';
import { configFailure } from './cli-output.ts';
import { embeddedConfig } from './config/embedded.ts';
import { loadConfigFile, validateConfig } from './config/load.ts';
import { type ConfigOverrides, parsePort, withOverrides } from './config/overrides.ts';
import type { Config } from './config/schema.ts';

const USAGE = `usage:
  sluice [--config FILE] [--port N]
                                start the gateway (FILE defaults to $SLUICE_CONFIG, else embedded
                                defaults); --port overrides server.port (and SLUICE_PORT)
  sluice check-config FILE      validate a config file
  sluice print-config [--config FILE] [--port N] [--format yaml|json]
                                print the effective config (defaults filled in, secrets redacted)
  sluice hash-key KEY           print the digest of a Sluice key for tenants.<name>.keys
  sluice migrate [--config FILE]  apply the request log's migrations (requestLog.url or DATABASE_URL) and exit`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      format: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let overrides: ConfigOverrides = {};
  if (values.port !== undefined) {
    const port = parsePort(values.port);
    if (port === undefined) return usageError(`--port ${values.port}: not a port (0 to 65535)`);
    overrides = { port };
  }
  const [command, arg] = positionals;
  if (command === 'hash-key') {
    if (!arg) return usageError('hash-key needs the key');
    process.stdout.write(`${hashKey(arg)}\n`);
    return 0;
  }
  if (command === 'check-config') {
    if (!arg) return usageError('check-config needs a file');
    try {
      await loadConfigFile(arg, process.env);
    } catch (err) {
      return configFailure(err);
    }
    process.stdout.write(`${arg}: ok\n`);
    return 0;
  }
  if (command === 'print-config') {
    const format = values.format ?? 'yaml';
    if (format !== 'yaml' && format !== 'json') return usageError(`--format ${format}: yaml or json`);
    const configPath = values.config ?? process.env.SLUICE_CONFIG;
    let config: Config;
    try {
      config = withOverrides(await loadConfig(configPath), overrides);
    } catch (err) {
      return configFailure(err);
    }
    const { printConfig } = await import('./config/print.ts');
    process.stdout.write(printConfig(config, format, configPath || 'embedded'));
    return 0;
  }
  if (command === 'migrate') return migrateCommand(values.config ?? process.env.SLUICE_CONFIG);
  if (command !== undefined && command !== 'start') return usageError(`unknown command ${command}`);
  // Imported here, not at the top: the other commands need none of the server (about a second of
  // module loading), so check-config on a large file stays quick.
  const { serve } = await import('./serve.ts');
  return serve(values.config ?? process.env.SLUICE_CONFIG, overrides);
}

/** The file's config, or the embedded one without a file. */
function loadConfig(configPath: string | undefined): Promise<Config> {
  return configPath
    ? loadConfigFile(configPath, process.env)
    : Promise.resolve().then(() => validateConfig(embeddedConfig(process.env), process.env));
}

async function migrateCommand(configPath: string | undefined): Promise<number> {
  let config: Config;
  try {
    config = await loadConfig(configPath);
  } catch (err) {
    return configFailure(err);
  }
  const { migrate } = await import('./requestlog/migrate.ts');
  const { openDatabase } = await import('./requestlog/request-log.ts');
  let opened: Awaited<ReturnType<typeof openDatabase>>;
  try {
    opened = await openDatabase(config.requestLog, process.env);
  } catch (err) {
    process.stderr.write(`sluice: migrate: ${(err as Error).message}\n`);
    return 1;
  }
  const { db, unlock } = opened;
  try {
    const applied = await migrate(db);
    process.stdout.write(
      `${db.target}: ${applied.length ? `applied ${applied.join(', ')}` : 'up to date'}\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`sluice: migrate failed on ${db.target}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await db.close();
    await unlock?.();
  }
}

function usageError(message: string): number {
  process.stderr.write(`sluice: ${message}\n${USAGE}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`sluice: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
