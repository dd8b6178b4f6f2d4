// Frozen once merged: later changes go in a new, higher-numbered migration.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Consecutive cycles an instance was reported missing, kept in the row so it survives restarts.
  await db.schema
    .alterTable('instances')
    .addColumn('missed_reports', 'smallint', (col) => col.notNull().defaultTo(0))
    .addColumn('last_missed_at', 'timestamptz')
    .execute();

  // The newest sync report per host, for operators to see which hosts are overdue or failing.
  await db.schema
    .createTable('host_sync_reports')
    .addColumn('host', 'text', (col) => col.primaryKey())
    .addColumn('tick_id', 'uuid')
    .addColumn('trigger', 'text', (col) => col.notNull())
    .addColumn('outcome', 'text', (col) => col.notNull())
    .addColumn('error', 'text')
    .addColumn('started_at', 'timestamptz', (col) => col.notNull())
    .addColumn('duration_ms', 'double precision', (col) => col.notNull())
    .addColumn('report', 'jsonb', (col) => col.notNull())
    .addColumn('received_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('host_sync_reports').ifExists().execute();
  await db.schema.alterTable('instances').dropColumn('last_missed_at').dropColumn('missed_reports').execute();
}
