/** `virtsync migrate`: brings DATABASE_URL's schema to the latest migration (safe to run from several places at once). */
import type { Command } from 'commander';
import { migrateToLatest } from '../../shared/db/migrate.ts';
import type { CliContext } from './cli-context.ts';
import { describeTarget } from './cli-errors.ts';

export function registerMigrateCommand(program: Command, context: CliContext): void {
  program
    .command('migrate')
    .description('run the database migrations up to the latest (needs a user that may create tables and roles)')
    .action(async () => {
      const db = await context.database();
      // Each applied migration is logged at info: shown even without --verbose.
      await migrateToLatest(db, context.log().child({ component: 'migrate' }, { level: 'info' }));
      context.print(`database ${describeTarget(context.config().databaseUrl)} is at the latest migration`);
    });
}
