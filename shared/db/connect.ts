import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from '../logging.ts';
import type { Database } from './database.ts';

export function createDatabase(options: { url: string; log: Logger; maxConnections?: number }): Kysely<Database> {
  const log = options.log.child({ component: 'database' });
  // A server that does not answer at all must fail the connect, not hang it (the breaker counts it).
  const pool = new pg.Pool({ connectionString: options.url, max: options.maxConnections ?? 10, connectionTimeoutMillis: 10_000 });
  // An idle client losing its server (restart, pg_terminate_backend) must not crash the process.
  pool.on('error', (err) => log.warn({ err }, 'idle database connection lost'));
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    log(event) {
      if (event.level === 'error') {
        log.debug({ err: event.error, durationMs: event.queryDurationMillis }, 'query failed');
      }
    },
  });
}
