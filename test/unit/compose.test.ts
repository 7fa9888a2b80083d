/**
 * docker-compose.yml's structure, since no test runs the stack itself: every image pinned, each
 * service's health check probing a port it listens on, and a stop grace period that lets the
 * gateway drain. (test/unit/dashboards.test.ts checks its mounts, config and scrape target.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { validateConfig } from '../../src/config/load.ts';
import { type FakeProvider, startFakeProvider } from '../../src/fake-provider/server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test?: string[]; disable?: boolean };
  stop_grace_period?: string;
}
const compose = parseYaml(readFileSync(`${ROOT}docker-compose.yml`, 'utf8')) as {
  services: Record<string, Service>;
};
const services = Object.entries(compose.services);

/** The port the Dockerfile's HEALTHCHECK probes, which a service built from it inherits. */
const dockerfile = readFileSync(`${ROOT}Dockerfile`, 'utf8');
const imageHealthPort = Number(/^HEALTHCHECK[\s\S]*?127\.0\.0\.1:(\d+)/m.exec(dockerfile)?.[1]);

/** A compose duration (`40s`, `1m30s`, `500ms`) in milliseconds. */
function durationMs(text: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 0.001 };
  let total = 0;
  const rest = text.replace(/(\d+(?:\.\d+)?)(ms|us|h|m|s)/g, (_, n: string, unit: string) => {
    total += Number(n) * units[unit]!;
    return '';
  });
  assert.equal(rest, '', `${text} is a compose duration`);
  return total;
}

describe('docker-compose.yml', () => {
  it('pins every image to a version tag', () => {
    for (const [name, service] of services) {
      if (service.image === undefined) continue;
      const tag = /:([^:/]+)$/.exec(service.image)?.[1];
      assert.ok(tag, `${name}: ${service.image} names a tag`);
      assert.notEqual(tag, 'latest', `${name}: ${service.image} is pinned`);
      assert.match(tag, /\d/, `${name}: ${service.image} is a version`);
    }
  });

  it('gives a service built from the gateway image a health check on its own port', () => {
    assert.equal(imageHealthPort, 8080);
    for (const [name, service] of services) {
      if (service.build === undefined || service.command === undefined) continue;
      // A different command in the gateway's image: the inherited check probes :8080.
      const port = Number(service.command[service.command.indexOf('--port') + 1]);
      assert.ok(port > 0, `${name} names its port`);
      if (port === imageHealthPort) continue;
      const check = service.healthcheck;
      assert.ok(check, `${name} listens on :${port}, so it overrides the image's check on :8080`);
      if (check.disable === true) continue;
      assert.ok(check.test?.join(' ').includes(`127.0.0.1:${port}/`), `${name}'s check probes :${port}`);
    }
  });

  describe("the fake provider's health check", () => {
    let fake: FakeProvider;
    before(async () => {
      fake = await startFakeProvider({ host: '127.0.0.1', port: 0 });
    });
    after(() => fake.close());

    it('passes against a running fake provider, and fails where nothing listens', async () => {
      const test = compose.services['fake-provider']!.healthcheck!.test!;
      assert.deepEqual(test.slice(0, 3), ['CMD', 'node', '-e']);
      // Asynchronously: the fake provider answering the probe runs in this process.
      const probe = async (port: number) => {
        const script = test[3]!.replace('127.0.0.1:9000', `127.0.0.1:${port}`);
        const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore', timeout: 10_000 });
        const [code] = await once(child, 'exit');
        return code as number | null;
      };
      assert.equal(await probe(Number(new URL(fake.origin).port)), 0);
      assert.equal(await probe(9), 1);
    });
  });

  it('lets the gateway drain on `docker compose stop`', () => {
    const sluice = compose.services.sluice!;
    const file = sluice.volumes!.find((v) => v.endsWith(':/etc/sluice/config.yaml:ro'))!.split(':')[0]!;
    const config = validateConfig(parseYaml(readFileSync(`${ROOT}${file}`, 'utf8')), sluice.environment!);
    assert.ok(sluice.stop_grace_period, 'sluice has a stop_grace_period (compose defaults to 10 s)');
    // A margin past the drain for the close that follows it (request log flush, connections).
    assert.ok(
      durationMs(sluice.stop_grace_period) >= config.server.drainTimeoutMs + 5_000,
      `stop_grace_period ${sluice.stop_grace_period} covers drainTimeoutMs ${config.server.drainTimeoutMs} + 5 s`,
    );
  });
});
