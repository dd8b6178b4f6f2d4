import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from '../logging.ts';
import type { Database } from './database.ts';

export function createDatabase(options: { url: string; log: Logger; maxConnections?: number }): Kysely<Database> {
  const log = options.log.child({ component: 'database' });
  // A server that does not answer at all must fail the connect, not hang it (the breaker counts it).
  const pool = new pg.Pool({ connectionString: options.url, max: options.maxConnections ?? 10, connectionTimeoutMillis: 10_000 });
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
