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

export function createDatabase(options: { url: string; log: Logger; maxConnections?: number; tls?: TlsFiles | undefined }): Kysely<Database> {
  const log = options.log.child({ component: 'database' });
  // A server that does not answer at all must fail the connect, not hang it (the breaker counts it).
  const pool = new pg.Pool({ ...connectionSettings(options.url, options.tls), max: options.maxConnections ?? 10, connectionTimeoutMillis: 10_000 });
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
