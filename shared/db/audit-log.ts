import type { Kysely } from 'kysely';
import type { AuditEntry, Database } from './database.ts';

/** Appends entries; an event already recorded (redelivery) is skipped. Returns how many were new. */
export async function appendAuditEntries(db: Kysely<Database>, entries: readonly AuditEntry[]): Promise<number> {
  if (entries.length === 0) return 0;
  const inserted = await db
    .insertInto('audit_log')
    .values([...entries])
    .onConflict((oc) => oc.column('event_id').doNothing())
    .returning('event_id')
    .execute();
  return inserted.length;
}
