// Frozen once merged: later changes go in a new, higher-numbered migration.
//
// The writer's relay deletes outbox rows published longer ago than OUTBOX_RETENTION_MS:
// without it the outbox grows by every change ever made.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`grant delete on change_outbox to virtsync_writer`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`revoke delete on change_outbox from virtsync_writer`.execute(db);
}
