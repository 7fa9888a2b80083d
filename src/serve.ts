/**
 * The gateway process: load the config, listen, reload on change or SIGHUP, drain on SIGTERM or
 * SIGINT. Imported by main.ts only for `sluice start`, so the other commands (check-config,
 * hash-key, migrate) do not load the server.
 */
import { hostname } from 'node:os';
import { buildApp } from './app.ts';
import { configFailure } from './cli-output.ts';
import { DEFAULTS } from './config/defaults.ts';
import { DEMO_ADMIN_KEY, DEMO_KEY, embeddedConfig } from './config/embedded.ts';
import { type ConfigError, validateConfig } from './config/load.ts';
import { loadConfigInThread } from './config/load-thread.ts';
import { type ConfigOverrides, withOverrides } from './config/overrides.ts';
import { serverChangesNeedingRestart } from './config/restart.ts';
import { watchConfigFile } from './config/watch.ts';
import type { FakeProvider } from './fake-provider/server.ts';
import { startFakeProvider } from './fake-provider/server.ts';
import { RequestLog } from './requestlog/request-log.ts';
import { compileRuntimeInTurns, needsEmbeddedFake, type Runtime } from './runtime.ts';
import type { ReloadOutcome } from './server/routes/admin.ts';
import type { ReadinessCheck } from './server/routes/health.ts';
import { createLoggers, stdoutDestination } from './telemetry/logger.ts';
import { createMetrics } from './telemetry/metrics.ts';
import { startMetricsServer } from './telemetry/metrics-server.ts';
import { createTracing } from './telemetry/tracing.ts';

export async function serve(
  configPath: string | undefined,
  overrides: ConfigOverrides = {},
): Promise<number> {
  const env = process.env;
  let fake: FakeProvider | undefined;
  // A file is read, parsed and validated in a worker thread and compiled a slice per turn, so a
  // reload of a large config never stalls the requests being served (src/config/load-thread.ts).
  const load = async (): Promise<Runtime> => {
    const loaded = configPath
      ? await loadConfigInThread(configPath, env)
      : validateConfig(embeddedConfig(env), env);
    const config = withOverrides(loaded, overrides);
    if (needsEmbeddedFake(config) && !fake) fake = await startFakeProvider({ host: '127.0.0.1', port: 0 });
    return compileRuntimeInTurns(config, { embeddedFakeBaseUrl: fake?.baseUrl });
  };

  let runtime: Runtime;
  try {
    runtime = await load();
  } catch (err) {
    await fake?.close();
    return configFailure(err);
  }
  const logOutput = stdoutDestination();
  const loggers = createLoggers(runtime.config.logging.level, logOutput);
  const logger = loggers.log;
  const metrics = createMetrics();
  let requestLog: RequestLog | undefined;
  if (runtime.config.requestLog.enabled) {
    try {
      requestLog = await RequestLog.open(runtime.config.requestLog, { log: logger, env, metrics });
    } catch (err) {
      logger.fatal({ err: (err as Error).message }, 'cannot open the request log');
      logOutput.flushSync();
      await fake?.close();
      return 1;
    }
  }
  const tracing = createTracing(runtime.config.tracing, `${hostname()}:${process.pid}`);
  // A rejected reload is reported on /readyz but keeps the instance ready: it serves the config it
  // has, and the same bad file pushed to every instance must not empty the load balancer.
  let reloadRejected: string | undefined;
  const configReadiness: ReadinessCheck = {
    name: 'config',
    check: () =>
      reloadRejected === undefined
        ? { state: 'loaded', ready: true }
        : { state: 'reload_rejected', ready: true, detail: reloadRejected },
  };
  const gateway = await buildApp(runtime, {
    logger,
    accessLogger: loggers.access,
    metrics,
    requestLog,
    tracing,
    readinessChecks: [configReadiness],
    // Called by POST /admin/reload, after listen: `reload` is defined before any request can come.
    reload: (reason) => reload(reason),
  });
  let reloading: Promise<unknown> = Promise.resolve();
  // One reload runs at a time; of the requests that arrive meanwhile one waits, and it reads the
  // file as it is when it starts, so a storm of changes costs two loads, not one each. Each
  // request gets the outcome of the reload that serves it (POST /admin/reload answers with it).
  let reloadWaiting: Promise<ReloadOutcome> | undefined;
  const reload = (reason: string): Promise<ReloadOutcome> => {
    if (reloadWaiting) return reloadWaiting;
    const queued = reloading.then(async (): Promise<ReloadOutcome> => {
      reloadWaiting = undefined;
      try {
        const next = await load();
        const restartOnly = serverChangesNeedingRestart(gateway.current().config.server, next.config.server);
        if (restartOnly.length > 0) {
          logger.warn({ settings: restartOnly }, `${restartOnly.join(', ')} changes take effect on restart`);
        }
        const redisBefore = gateway.current().config.limits.redis;
        const redisAfter = next.config.limits.redis;
        if (
          (redisAfter.url ?? '') !== (redisBefore.url ?? '') ||
          redisAfter.commandTimeoutMs !== redisBefore.commandTimeoutMs ||
          redisAfter.failuresToOpen !== redisBefore.failuresToOpen ||
          redisAfter.cooldownMs !== redisBefore.cooldownMs
        ) {
          logger.warn(
            'limits.redis connection settings take effect on restart (keyPrefix and failureMode follow the reload)',
          );
        }
        for (const section of ['requestLog', 'tracing'] as const) {
          if (JSON.stringify(next.config[section]) !== JSON.stringify(gateway.current().config[section])) {
            logger.warn(`${section} changes take effect on restart`);
          }
        }
        gateway.apply(next);
        logger.level = next.config.logging.level;
        loggers.access.level = next.config.logging.level;
        gateway.metrics.configReloads.inc({ result: 'applied' });
        reloadRejected = undefined;
        logger.info({ reason, models: next.models.size, providers: next.providers.size }, 'config reloaded');
        return { result: 'applied', models: next.models.size, providers: next.providers.size };
      } catch (err) {
        gateway.metrics.configReloads.inc({ result: 'rejected' });
        reloadRejected = `${new Date().toISOString()}: ${(err as Error).message.slice(0, 200)}; serving the config loaded before`;
        logger.error(
          { reason, path: (err as ConfigError).path, error: (err as Error).message },
          'config rejected; keeping the running config',
        );
        return { result: 'rejected', path: (err as ConfigError).path ?? '', message: (err as Error).message };
      }
    });
    reloadWaiting = queued;
    reloading = queued;
    return queued;
  };
  const { host, port, metricsPort } = runtime.config.server;
  let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  // Which setting to change when an address cannot be had, for the one log line that says so.
  let setting =
    overrides.port !== undefined
      ? '--port'
      : configPath
        ? `server.port in ${configPath} (or --port)`
        : '--port or SLUICE_PORT';
  let listening = `${host}:${port}`;
  try {
    await gateway.app.listen({ host, port });
    if (metricsPort !== undefined) {
      setting = `server.metricsPort${configPath ? ` in ${configPath}` : ''}`;
      listening = `${host}:${metricsPort}`;
      metricsServer = await startMetricsServer(metrics.registry, host, metricsPort);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      // An operator's mistake, not a bug: one line naming the address and the fix, no stack.
      const why =
        code === 'EADDRINUSE'
          ? 'is in use by another process'
          : code === 'EACCES'
            ? 'needs privileges (ports below 1024)'
            : 'is not an address of this host';
      if (code === 'EADDRNOTAVAIL') setting = `server.host${configPath ? ` in ${configPath}` : ''}`;
      logger.fatal(
        { address: listening, code },
        `cannot listen on ${listening}: the address ${why}; change ${setting}`,
      );
    } else logger.fatal({ err }, 'cannot listen');
    logOutput.flushSync();
    await gateway.shutdown(0);
    await requestLog?.close(1_000);
    await fake?.close();
    return 1;
  }
  const address = gateway.app.server.address();
  const url =
    typeof address === 'object' && address ? `http://${host}:${address.port}` : `http://${host}:${port}`;
  logger.info(
    {
      url,
      // The process to send SIGHUP to: under `npm start` it is not npm's pid.
      pid: process.pid,
      config: configPath ?? 'embedded',
      fakeProvider: fake?.baseUrl,
      metrics: metricsServer?.url ?? `${url}/metrics`,
      models: [...runtime.models.keys()],
    },
    'sluice listening',
  );
  if (!configPath)
    logger.warn(
      { demoKey: DEMO_KEY, demoAdminKey: DEMO_ADMIN_KEY },
      'embedded config: demo tenant and admin keys accepted on localhost only',
    );

  const stopWatching = configPath
    ? watchConfigFile(configPath, DEFAULTS.reloadDebounceMs, () => reload('file changed'))
    : () => {};
  process.on('SIGHUP', () => reload('SIGHUP'));

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        logOutput.flushSync();
        resolve(1);
        return;
      }
      stopping = true;
      const drainTimeoutMs = gateway.current().config.server.drainTimeoutMs;
      logger.info({ signal, drainTimeoutMs }, 'draining');
      stopWatching();
      await gateway.shutdown(drainTimeoutMs);
      await metricsServer?.close();
      // After the drain, so the rows of the last requests are written (or spilled) too.
      await requestLog?.close(10_000);
      await tracing
        .shutdown()
        .catch((err: Error) => logger.warn({ err: err.message }, 'tracing: last export failed'));
      await fake?.close();
      logger.info('stopped');
      logOutput.flushSync();
      resolve(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  });
}
