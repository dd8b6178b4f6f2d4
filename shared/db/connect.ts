import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { TlsFiles } from '../config.ts';
import type { Logger } from '../logging.ts';
import { readTlsOptions } from '../tls-options.ts';
import type { Database } from './database.ts';

/**
 * node-postgres settings for a URL, with TLS from the operator's files if given: the server
 * is verified against the CA and by name, as sslmode=verify-full does.
 */
export function connectionSettings(url: string, tls: TlsFiles | undefined): pg.ClientConfig {
  return tls === undefined ? { connectionString: url } : { connectionString: url, ssl: readTlsOptions(tls) };
}

/** Longest a statement may run (server side) unless the caller says otherwise. */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;

/**
 * Time limits every connection gets. The server cancels a statement past `statement_timeout`
 * and ends a session idle inside a transaction; the client gives up on an answer that does not
 * come (`query_timeout`, a little later than the server's limit, for a server or network that
 * went silent); TCP keepalive makes the kernel notice a peer that vanished without a FIN.
 */
export function connectionLimits(statementTimeoutMs: number) {
  return {
    statement_timeout: statementTimeoutMs,
    idle_in_transaction_session_timeout: statementTimeoutMs * 2,
    query_timeout: statementTimeoutMs + 5_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // A server that does not answer at all must fail the connect, not hang it (the breaker counts it).
    connectionTimeoutMillis: 10_000,
  };
}

export function createDatabase(options: {
  url: string;
  log: Logger;
  maxConnections?: number;
  statementTimeoutMs?: number;
  tls?: TlsFiles | undefined;
}): Kysely<Database> {
  const log = options.log.child({ component: 'database' });
  const pool = new pg.Pool({
    ...connectionSettings(options.url, options.tls),
    max: options.maxConnections ?? 10,
    ...connectionLimits(options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS),
  });
  // A client losing its server (restart, pg_terminate_backend) must not crash the process. pg-pool
  // listens only while a client is idle; a checked-out client needs its own listener (its query
  // fails with the same error, and the caller retries).
  pool.on('error', (err) => log.warn({ err }, 'idle database connection lost'));
  pool.on('connect', (client) => client.on('error', (err) => log.warn({ err }, 'database connection lost')));
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    log(event) {
      if (event.level === 'error') {
        log.debug({ err: event.error, durationMs: event.queryDurationMillis }, 'query failed');
      }
    },
  });
}

/** What a refused connection most likely means, when the server's words leave it open. */
export function databaseFailureHint(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  if (/no encryption|SSL off/i.test(err.message)) return 'the server accepts TLS connections only: set DATABASE_CA_FILE (verify-full)';
  if (/does not support SSL/i.test(err.message)) return 'the server does not speak TLS: check DATABASE_URL\'s port or unset DATABASE_CA_FILE';
  return undefined;
}
