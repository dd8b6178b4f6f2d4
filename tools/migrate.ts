/** `npm run migrate`: brings DATABASE_URL's schema to the latest migration. */
import { loadConfig, toolsEnv } from '../shared/config.ts';
import { createDatabase } from '../shared/db/connect.ts';
import { migrateToLatest } from '../shared/db/migrate.ts';
import { createLogger } from '../shared/logging.ts';

const config = loadConfig(toolsEnv);
const log = createLogger({ service: 'migrate', level: config.logLevel });
const db = createDatabase({ url: config.databaseUrl, log });
try {
  await migrateToLatest(db, log);
  log.info('database is at the latest migration');
} finally {
  await db.destroy();
}
