/** Read-only: the audit trail of one instance, behind `virtsync history`. */
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { AuditLogTable, Database } from './database.ts';

type Db = Kysely<Database> | Transaction<Database>;

export type AuditRecord = Selectable<AuditLogTable>;

/** Every recorded change of `instanceUuid`, oldest first (audit_log_instance_idx serves it). */
export async function readInstanceHistory(db: Db, instanceUuid: string): Promise<AuditRecord[]> {
  return db
    .selectFrom('audit_log')
    .selectAll()
    .where('instance_uuid', '=', instanceUuid)
    .orderBy('committed_at')
    .orderBy('observed_at')
    .orderBy('recorded_at')
    .execute();
}
