/**
 * A benchmark's own database (recreated, migrated, dropped afterwards) and its own
 * RabbitMQ virtual host (through the management API, deleted with everything in it).
 */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { loadConfig, toolsEnv } from '../../shared/config.ts';
import { createDatabase } from '../../shared/db/connect.ts';
import type { Database } from '../../shared/db/database.ts';
import { migrateToLatest } from '../../shared/db/migrate.ts';
import { createLogger, type Logger } from '../../shared/logging.ts';
import { createTestVhost } from '../../tools/local-env/vhost.ts';
import { dropDatabase, recreateDatabase } from '../../tools/db-admin.ts';
import type { BenchContext } from './harness.ts';

/** The services' modules want a logger; a benchmark keeps them quiet (BENCH_LOG_LEVEL to see them). */
// A bench-only switch, outside shared/config.ts like the tests' TEST_LOG_LEVEL: services never read it.
export const benchLogger: Logger = createLogger({ service: 'bench', level: process.env.BENCH_LOG_LEVEL ?? 'silent' });

export interface BenchDatabase {
  name: string;
  url: string;
  db: Kysely<Database>;
}

export async function createBenchDatabase(context: BenchContext, scenario: string, maxConnections = 10): Promise<BenchDatabase> {
  const serverUrl = loadConfig(toolsEnv).databaseUrl;
  const name = `virtsync_bench_${scenario.replaceAll('-', '_')}_${randomBytes(3).toString('hex')}`;
  const url = await recreateDatabase(serverUrl, name);
  context.defer(`drop database ${name}`, () => dropDatabase(serverUrl, name));
  const db = createDatabase({ url, log: benchLogger, maxConnections });
  context.defer('close database pool', () => db.destroy());
  await migrateToLatest(db, benchLogger);
  return { name, url, db };
}

export async function createBenchVhost(context: BenchContext): Promise<{ name: string; amqpUrl: string }> {
  const vhost = await createTestVhost();
  context.defer(`delete vhost ${vhost.name}`, () => vhost.delete());
  return { name: vhost.name, amqpUrl: vhost.amqpUrl };
}
