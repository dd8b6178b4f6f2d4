/**
 * Runs the migrations through kysely's Migrator, whose lock table makes it safe for two
 * processes to migrate at once. The list is explicit so it works the same from source and bundles.
 * Numbers are handed out to changes before they merge, so a lower number may land after a
 * higher one has run somewhere (0007 before 0005): unordered migrations are allowed, and
 * each migration must not depend on a lower-numbered one that may not have run yet.
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import type { Logger } from '../logging.ts';
import type { Database } from './database.ts';
import * as m0001 from './migrations/0001-initial.ts';
import * as m0002 from './migrations/0002-missed-reports-and-host-reports.ts';
import * as m0003 from './migrations/0003-service-roles.ts';
import * as m0004 from './migrations/0004-outbox-retention.ts';
import * as m0005 from './migrations/0005-host-liveness.ts';
import * as m0006 from './migrations/0006-instance-sync-state.ts';
import * as m0007 from './migrations/0007-outbox-claims.ts';
import * as m0008 from './migrations/0008-agent-row-security.ts';
import * as m0009 from './migrations/0009-report-only-shadow.ts';
import * as m0010 from './migrations/0010-writer-reads-liveness.ts';

export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-initial': m0001,
  '0002-missed-reports-and-host-reports': m0002,
  '0003-service-roles': m0003,
  '0004-outbox-retention': m0004,
  '0005-host-liveness': m0005,
  '0006-instance-sync-state': m0006,
  '0007-outbox-claims': m0007,
  '0008-agent-row-security': m0008,
  '0009-report-only-shadow': m0009,
  '0010-writer-reads-liveness': m0010,
};

export async function migrateToLatest(db: Kysely<Database>, log: Logger, migrations: Readonly<Record<string, Migration>> = MIGRATIONS): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => ({ ...migrations }) };
  const migrator = new Migrator({ db, provider, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  for (const result of results ?? []) {
    if (result.status === 'Success') log.info({ migration: result.migrationName }, 'migration applied');
    else if (result.status === 'Error') log.error({ migration: result.migrationName }, 'migration failed');
  }
  if (error !== undefined) throw new Error('database migration failed', { cause: error });
}
