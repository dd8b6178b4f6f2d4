// Frozen once merged: later changes go in a new, higher-numbered migration.
//
// The outbox relay claims rows in one short statement (locked_at/locked_by, as
// graphile-worker claims jobs) instead of holding a transaction open with the rows
// locked while it waits up to a minute for broker confirms. A claim older than its
// time-to-live is taken over, so a relay that crashed mid-publish holds nothing for long.
// Numbered 0007: 0005 and 0006 belong to other changes; migrations run unordered-tolerant.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table change_outbox add column locked_at timestamptz, add column locked_by text`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table change_outbox drop column locked_at, drop column locked_by`.execute(db);
}
