/**
 * What every command may need, opened on first use and closed once at the end: the
 * configuration (DATABASE_URL, AMQP_URL), the logger, a database and a broker
 * connection. Opening checks the service answers, so an unreachable one is reported as
 * such (exit 3) before the command starts its work.
 */
import { once } from 'node:events';
import { type Kysely, sql } from 'kysely';
import { type BusConnection, connectBus } from '../../shared/bus/connect.ts';
import { type CommonConfig, loadConfig, toolsEnv } from '../../shared/config.ts';
import { createDatabase } from '../../shared/db/connect.ts';
import type { Database } from '../../shared/db/database.ts';
import type { Logger } from '../../shared/logging.ts';
import { describeTarget } from './cli-errors.ts';
import { brokerConnectFailure, databaseConnectFailure } from './connect-failure.ts';
import { createCliLogger } from './cli-logger.ts';
import { coerceError } from '../../shared/errors.ts';

/** How long a service may take to answer the first time before it counts as unreachable. */
export const CONNECT_TIMEOUT_MS = 10_000;

export interface CliContext {
  /** Parsed on first use, so `--help` and argument errors never need a valid environment. */
  config(): CommonConfig;
  log(): Logger;
  database(): Promise<Kysely<Database>>;
  bus(): Promise<BusConnection>;
  /** The command's answer, on stdout. */
  print(text: string): void;
  /** Progress and notes for the person at the terminal, on stderr (stdout stays parseable). */
  note(text: string): void;
  /** Closes whatever was opened; safe to call twice. */
  close(): Promise<void>;
}

export function createCliContext(options: { env: Record<string, string | undefined>; verbose: () => boolean }): CliContext {
  let config: CommonConfig | undefined;
  let log: Logger | undefined;
  let db: Kysely<Database> | undefined;
  let bus: BusConnection | undefined;

  const context: CliContext = {
    config() {
      config ??= loadConfig(toolsEnv, options.env);
      return config;
    },
    log() {
      log ??= createCliLogger({ verbose: options.verbose() });
      return log;
    },
    async database() {
      if (db !== undefined) return db;
      const url = context.config().databaseUrl;
      const candidate = createDatabase({ url, log: context.log(), maxConnections: 2 });
      try {
        await withTimeout(sql`select 1`.execute(candidate), CONNECT_TIMEOUT_MS);
      } catch (err) {
        // Not awaited: a pool still trying to connect may not end promptly, and the process is about to exit.
        void candidate.destroy().catch(() => undefined);
        throw databaseConnectFailure(describeTarget(url), err);
      }
      db = candidate;
      return db;
    },
    async bus() {
      if (bus !== undefined) return bus;
      const url = context.config().amqpUrl;
      const candidate = connectBus({ url, name: 'virtsync cli', log: context.log() });
      try {
        await firstConnect(candidate, CONNECT_TIMEOUT_MS);
      } catch (err) {
        await candidate.close().catch(() => undefined);
        throw brokerConnectFailure(describeTarget(url), url, err);
      }
      bus = candidate;
      return bus;
    },
    print(text) {
      process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    note(text) {
      process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    async close() {
      const [openBus, openDb] = [bus, db];
      bus = undefined;
      db = undefined;
      await openBus?.close();
      await openDb?.destroy();
    },
  };
  return context;
}

/**
 * Resolves on the first successful connect; rejects on the first failed attempt. A
 * service reconnects forever, but a person at a terminal wants to know at once.
 */
async function firstConnect(connection: BusConnection, timeoutMs: number): Promise<void> {
  const controller = new AbortController();
  try {
    await Promise.race([
      once(connection, 'connect', { signal: controller.signal }),
      once(connection, 'connectFailed', { signal: controller.signal }).then(([event]: unknown[]) => {
        throw typeof event === 'object' && event !== null && 'err' in event ? coerceError(event.err) : new Error('connection attempt failed');
      }),
      sleepThenFail(timeoutMs, controller.signal),
    ]);
  } finally {
    controller.abort();
  }
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  const controller = new AbortController();
  try {
    return await Promise.race([promise, sleepThenFail(timeoutMs, controller.signal)]);
  } finally {
    controller.abort();
  }
}

function sleepThenFail(timeoutMs: number, signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  });
}
