/**
 * The service kit. A service is a definition: its name, its environment schema and a
 * `start` that holds only its own logic. The kit hands `start` what every service needs
 * (config, logger, database pool, broker connection, a confirm publisher that declares the
 * core topology, a database breaker) and a `defer` to register how to undo what it built.
 *
 * - `startService` composes a service on connections the caller owns (tests, benchmarks).
 * - `runService` is a process: config (exit 2 naming every bad variable), root logger,
 *   connections, /healthz /readyz /metrics, and one stop on SIGINT/SIGTERM or when the
 *   service says it is `finished`. The first signal drains; a second one, or the shutdown
 *   deadline, exits non-zero at once.
 *
 * Stopping runs every closer last-in-first-out: what was built last (intake) stops first,
 * the connections it used close last.
 */
import type { Kysely } from 'kysely';
import { Registry } from 'prom-client';
import type { z } from 'zod';
import { type Breaker, createDatabaseBreaker } from './breaker.ts';
import { brokerHealth, type BusConnection, connectBus } from './bus/connect.ts';
import { createPublisher, type Publisher } from './bus/publisher.ts';
import { declareCoreTopology } from './bus/topology.ts';
import { type CommonConfig, loadConfig } from './config.ts';
import { createDatabase } from './db/connect.ts';
import type { Database } from './db/database.ts';
import { startDatabaseProbe } from './db/readiness-probe.ts';
import { coerceError, ConfigError } from './errors.ts';
import { type ReadinessChecks, startHttpServer } from './http-server.ts';
import { createLogger, type Logger } from './logging.ts';
import { createServiceRegistry } from './metrics-registry.ts';

export type Closer = () => Promise<void> | void;

/** What a service's `start` is handed. */
export interface ServiceKit<C extends CommonConfig> {
  config: Readonly<C>;
  /** The service's logger (bound to its component). */
  log: Logger;
  db: Kysely<Database>;
  bus: BusConnection;
  /** A confirm channel whose setup declares the core topology (so nothing published before a consumer exists is lost). */
  publisher: Publisher;
  /** Every database call of the service goes through it; readiness reports it. */
  dbBreaker: Breaker;
  /** Registers a step of the service's stop; steps run in reverse order of registration. */
  defer(closer: Closer): void;
  /** The service's own registry, served at /metrics: a service may add gauges read at scrape time. */
  metrics: Registry;
}

/** What a service's `start` may hand back. */
export interface ServiceHooks {
  /** Readiness checks of its own, beside the kit's broker and database checks. */
  checks?: ReadinessChecks;
  /** Settles when the service has done its work (e.g. configured cycles): the process then stops. */
  finished?: Promise<unknown>;
}

export interface ServiceDefinition<S extends z.ZodType<CommonConfig>> {
  /** The service's name, as logged and as the broker connection's name. */
  name: string;
  env: S;
  /** Database connections the service can use at once (default 10). */
  maxDatabaseConnections?: (config: Readonly<z.output<S>>) => number;
  start(kit: ServiceKit<z.output<S>>): Promise<ServiceHooks | void>;
}

export interface RunningService {
  /** Stop intake, finish in-flight work, close what the service built. Safe to call twice. */
  stop(): Promise<void>;
  /** What /readyz reports: each named check must hold. */
  checks: ReadinessChecks;
  /** From the service's hooks; never settles for a service that runs until stopped. */
  finished: Promise<unknown>;
}

/** Identity for a service definition: only here to infer the config type for `start`. */
export function defineService<S extends z.ZodType<CommonConfig>>(definition: ServiceDefinition<S>): ServiceDefinition<S> {
  return definition;
}

/** A last-in-first-out list of closers whose `close` runs them once, however often it is called. */
export function createClosers(): { defer(closer: Closer): void; close(): Promise<void> } {
  const closers: Closer[] = [];
  let closed: Promise<void> | undefined;
  return {
    defer: (closer) => void closers.push(closer),
    close() {
      closed ??= (async () => {
        for (const closer of closers.splice(0).reverse()) await closer();
      })();
      return closed;
    },
  };
}

/**
 * Composes a service on a pool and broker connection the caller owns (and closes). If
 * `start` fails, whatever it had built is closed before the error is thrown.
 */
export async function startService<S extends z.ZodType<CommonConfig>>(
  definition: ServiceDefinition<S>,
  deps: { config: Readonly<z.output<S>>; log: Logger; db: Kysely<Database>; bus: BusConnection; metrics?: Registry },
): Promise<RunningService> {
  const { config, db, bus } = deps;
  const log = deps.log.child({ component: definition.name });
  const closers = createClosers();
  const publisher = createPublisher(bus, { name: `${definition.name}.publish`, log, setup: declareCoreTopology });
  closers.defer(() => publisher.close());
  const dbBreaker = createDatabaseBreaker(config, log);
  const dbProbe = startDatabaseProbe(db, { intervalMs: 5_000, timeoutMs: 2_000 });
  closers.defer(() => dbProbe.stop());

  let hooks: ServiceHooks | void;
  try {
    // Composed without a process (tests, benchmarks), nothing serves the registry.
    const metrics = deps.metrics ?? new Registry();
    hooks = await definition.start({ config, log, db, bus, publisher, dbBreaker, defer: closers.defer, metrics });
  } catch (err) {
    await closers.close();
    throw err;
  }
  const ownChecks = hooks?.checks ?? (() => ({}));
  return {
    stop: closers.close,
    // Why the broker or the database is unusable (a refused login is not an outage), beside the service's own checks.
    checks: () => ({ broker: brokerHealth(bus), database: dbBreaker.state() !== 'open', databaseQuery: dbProbe.health(), ...ownChecks() }),
    finished: hooks?.finished ?? new Promise<never>(() => undefined),
  };
}

/** Runs a service as this process until a signal, or until the service is finished. */
export async function runService<S extends z.ZodType<CommonConfig>>(definition: ServiceDefinition<S>): Promise<void> {
  let config: Readonly<z.output<S>>;
  try {
    config = loadConfig(definition.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${definition.name}: ${err.message}\n`);
    process.exit(2);
  }
  const log = createLogger({ service: definition.name, level: config.logLevel });
  const connections = createClosers();
  let stopping = false;
  let service: RunningService;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  try {
    const db = createDatabase({
      url: config.databaseUrl,
      log,
      maxConnections: definition.maxDatabaseConnections?.(config),
      statementTimeoutMs: config.databaseTimeoutMs,
    });
    connections.defer(() => db.destroy());
    const bus = connectBus({ url: config.amqpUrl, name: `virtsync ${definition.name}`, log });
    connections.defer(() => bus.close());
    const metrics = createServiceRegistry(definition.name);
    service = await startService(definition, { config, log, db, bus, metrics });
    const checks = service.checks;
    http = await startHttpServer({ port: config.httpPort, log, registry: metrics, checks: () => ({ ...checks(), running: !stopping }) });
  } catch (err) {
    log.fatal({ err: coerceError(err) }, 'service failed to start');
    process.exit(1);
  }
  log.info('service started');

  const shutdown = (why: Record<string, unknown>, exitCode = 0): void => {
    if (stopping) return;
    stopping = true;
    log.info({ ...why, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    const deadline = setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown deadline passed, exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    (async () => {
      await service.stop();
      await connections.close();
      await http.close();
    })().then(
      () => {
        log.info('service stopped');
        process.exit(exitCode);
      },
      (err: unknown) => {
        log.error({ err: coerceError(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal, exiting at once');
      process.exit(130);
    }
    shutdown({ signal });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  service.finished.then(
    () => shutdown({ reason: 'finished' }),
    (err: unknown) => {
      log.error({ err: coerceError(err) }, 'service failed');
      shutdown({ reason: 'failed' }, 1);
    },
  );
}
