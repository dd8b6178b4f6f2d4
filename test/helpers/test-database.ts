/** A migrated database of its own for one test file, dropped afterwards. */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { loadConfig, toolsEnv } from '../../shared/config.ts';
import { createDatabase } from '../../shared/db/connect.ts';
import type { Database } from '../../shared/db/database.ts';
import { migrateToLatest } from '../../shared/db/migrate.ts';
import { dropDatabase, recreateDatabase } from '../../tools/db-admin.ts';
import { testLogger } from './test-logger.ts';

export interface TestDatabase {
  db: Kysely<Database>;
  url: string;
  drop(): Promise<void>;
}

/** On the machine's server (DATABASE_URL), or on `serverUrl`: a cluster the test started itself. */
export async function createTestDatabase(serverUrl = loadConfig(toolsEnv).databaseUrl): Promise<TestDatabase> {
  const name = `virtsync_test_${randomBytes(4).toString('hex')}`;
  const url = await recreateDatabase(serverUrl, name);
  const db = createDatabase({ url, log: testLogger });
  await migrateToLatest(db, testLogger);
  return {
    db,
    url,
    async drop() {
      await db.destroy();
      await dropDatabase(serverUrl, name);
    },
  };
}
