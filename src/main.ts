#!/usr/bin/env node
/**
 * The command line: parse it and run one command. The gateway itself (`start`, the default) is
 * src/serve.ts.
 *
 *   sluice [--config FILE]          start the gateway (embedded defaults without a config)
 *   sluice check-config FILE        validate a config file and exit
 *   sluice hash-key KEY             print the digest to put in tenants.<name>.keys
 *   sluice migrate [--config FILE]  apply the request log's pending migrations and exit
 */
import { parseArgs } from 'node:util';
import { hashKey } from './auth/keys.ts';
import { configFailure } from './cli-output.ts';
import { embeddedConfig } from './config/embedded.ts';
import { loadConfigFile, validateConfig } from './config/load.ts';
import type { Config } from './config/schema.ts';

const USAGE = `usage:
  sluice [--config FILE]        start the gateway (FILE defaults to $SLUICE_CONFIG, else embedded defaults)
  sluice check-config FILE      validate a config file
  sluice hash-key KEY           print the digest of a Sluice key for tenants.<name>.keys
  sluice migrate [--config FILE]  apply the request log's migrations (requestLog.url or DATABASE_URL) and exit`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
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
  if (command === 'migrate') return migrateCommand(values.config ?? process.env.SLUICE_CONFIG);
  if (command !== undefined && command !== 'start') return usageError(`unknown command ${command}`);
  // Imported here, not at the top: the other commands need none of the server (about a second of
  // module loading), so check-config on a large file stays quick.
  const { serve } = await import('./serve.ts');
  return serve(values.config ?? process.env.SLUICE_CONFIG);
}

async function migrateCommand(configPath: string | undefined): Promise<number> {
  let config: Config;
  try {
    config = configPath
      ? await loadConfigFile(configPath, process.env)
      : validateConfig(embeddedConfig(process.env), process.env);
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
