/**
 * What every service's main does the same way: load config (exit 2 naming every bad
 * variable), create the root logger, start, and stop once on SIGINT/SIGTERM. The first
 * signal drains; a second one, or the shutdown deadline, exits non-zero at once.
 */
import type { Kysely } from 'kysely';
import type { z } from 'zod';
import { type BusConnection, connectBus } from './bus/connect.ts';
import { verifyCoreTopology } from './bus/topology.ts';
import { awaitTopology } from './bus/topology-gate.ts';
import { type CommonConfig, loadConfig } from './config.ts';
import { createDatabase } from './db/connect.ts';
import type { Database } from './db/database.ts';
import { coerceError, ConfigError } from './errors.ts';
import { type ReadinessChecks, startHttpServer } from './http-server.ts';
import { createLogger, type Logger } from './logging.ts';

export interface RunningService {
  /** Stop intake, finish in-flight work, close connections. Safe to call twice. */
  stop(): Promise<void>;
  /** What /readyz reports: each named check must hold (connected, breakers closed). */
  checks?: ReadinessChecks;
}

export async function runService<S extends z.ZodType<CommonConfig>>(options: {
  service: string;
  env: S;
  start: (context: { config: Readonly<z.output<S>>; log: Logger }) => Promise<RunningService>;
}): Promise<void> {
  let config: Readonly<z.output<S>>;
  try {
    config = loadConfig(options.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${options.service}: ${err.message}\n`);
    process.exit(2);
  }
  const log = createLogger({ service: options.service, level: config.logLevel });

  let running: RunningService;
  let stopping = false;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  try {
    running = await options.start({ config, log });
    const checks = running.checks ?? (() => ({}));
    http = await startHttpServer({ port: config.httpPort, log, checks: () => ({ ...checks(), running: !stopping }) });
  } catch (err) {
    log.fatal({ err: coerceError(err) }, 'service failed to start');
    process.exit(1);
  }
  log.info('service started');

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal, exiting at once');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    const deadline = setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown deadline passed, exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    running.stop().then(
      async () => {
        await http.close();
        log.info('service stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err: coerceError(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/**
 * runService for a service that needs the database and the broker: one pool and one
 * broker connection, handed to `start`, closed after the service has stopped.
 */
export async function runConnectedService<S extends z.ZodType<CommonConfig>>(options: {
  service: string;
  env: S;
  /** Database connections the service can use at once (default 10). */
  maxDatabaseConnections?: (config: Readonly<z.output<S>>) => number;
  start: (context: { config: Readonly<z.output<S>>; log: Logger; db: Kysely<Database>; bus: BusConnection }) => Promise<RunningService>;
}): Promise<void> {
  await runService({
    service: options.service,
    env: options.env,
    async start({ config, log }) {
      const db = createDatabase({ url: config.databaseUrl, tls: config.databaseTls, log, maxConnections: options.maxDatabaseConnections?.(config) });
      const bus = connectBus({ url: config.amqpUrl, tls: config.amqpTls, name: `virtsync ${options.service}`, log });
      if (config.busTopology === 'verify') await awaitTopology(bus, { what: 'core', check: verifyCoreTopology, log });
      const running = await options.start({ config, log, db, bus });
      return {
        checks: running.checks,
        async stop() {
          await running.stop();
          await bus.close();
          await db.destroy();
        },
      };
    },
  });
}
