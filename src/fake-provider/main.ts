// CLI: node src/fake-provider/main.ts [--host 127.0.0.1] [--port 9000] [--<behaviour> <value>]...
// Every behaviour name (see docs/fake-provider.md) can be given as a default, e.g. --chunks 20.

import { parseArgs } from 'node:util';
import { BEHAVIOUR_NAMES, parseBehaviourOptions } from './behaviour.ts';
import { startFakeProvider } from './server.ts';

const USAGE = `usage: node src/fake-provider/main.ts [--host 127.0.0.1] [--port 9000] [--<behaviour> <value>]...
behaviours (defaults for every request; headers x-fake-<name> and /fake/<name>=<value>/v1 override):
  ${BEHAVIOUR_NAMES.map((n) => `--${n}`).join(' ')}
see docs/fake-provider.md`;

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    host: { type: 'string' },
    port: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const name of BEHAVIOUR_NAMES) options[name] = { type: 'string' };

  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }

  const host = typeof values.host === 'string' ? values.host : '127.0.0.1';
  const portText = typeof values.port === 'string' ? values.port : '9000';
  const port = Number(portText);
  if (!/^[0-9]{1,5}$/.test(portText) || port > 65535) fail(`invalid --port ${JSON.stringify(portText)}`);

  const behaviourValues: Record<string, string> = {};
  for (const name of BEHAVIOUR_NAMES) {
    const v = values[name];
    if (typeof v === 'string') behaviourValues[name] = v;
  }
  let defaults: ReturnType<typeof parseBehaviourOptions>;
  try {
    defaults = parseBehaviourOptions(behaviourValues);
  } catch (err) {
    fail((err as Error).message);
  }

  const fake = await startFakeProvider({ host, port, defaults });
  process.stdout.write(`fake provider listening on ${fake.baseUrl}\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.exit(signal === 'SIGINT' ? 130 : 143); // second signal: give up waiting
    }
    stopping = true;
    fake.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`fake provider: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
