/** Report-only mode's shadow (instance_sync_shadow, migration 0009): see shared/sync-shadow.ts. */
import { sql, type Transaction } from 'kysely';
import type { ShadowEntry } from '../sync-shadow.ts';
import type { Database, Db, InstanceSyncShadowTable } from './database.ts';

type ShadowRow = Pick<
  InstanceSyncShadowTable,
  'base_host' | 'base_power_state' | 'base_vm_state' | 'base_task_state' | 'base_deleted' | 'shadow_power_state' | 'shadow_vm_state' | 'look_host'
> & { missed_reports: number; look_epoch: string | null; look_seq: string | null };

/** The entries of a batch's instances; read after their rows are locked, so no other writer changes them meanwhile. */
export async function readShadowEntries(trx: Transaction<Database>, uuids: readonly string[]): Promise<Map<string, ShadowEntry>> {
  if (uuids.length === 0) return new Map();
  const rows = await trx
    .selectFrom('instance_sync_shadow')
    .selectAll()
    .where('uuid', '=', sql<string>`any(${sql.val([...uuids])}::uuid[])`)
    .execute();
  return new Map(rows.map((row) => [row.uuid, shadowEntryOf(row)]));
}

export function shadowEntryOf(row: ShadowRow): ShadowEntry {
  return {
    base: { host: row.base_host, powerState: row.base_power_state, vmState: row.base_vm_state, taskState: row.base_task_state, deleted: row.base_deleted },
    state: { powerState: row.shadow_power_state, vmState: row.shadow_vm_state },
    missedReports: row.missed_reports,
    lastLook: row.look_host === null || row.look_epoch === null || row.look_seq === null ? null : { host: row.look_host, epoch: Number(row.look_epoch), seq: Number(row.look_seq) },
  };
}

/** One statement for the whole batch. */
export async function writeShadowEntries(trx: Transaction<Database>, entries: ReadonlyMap<string, ShadowEntry>): Promise<void> {
  if (entries.size === 0) return;
  const uuids = [...entries.keys()];
  const all = [...entries.values()];
  await sql`
    insert into instance_sync_shadow as s
           (uuid, base_host, base_power_state, base_vm_state, base_task_state, base_deleted,
            shadow_power_state, shadow_vm_state, missed_reports, look_host, look_epoch, look_seq, updated_at)
    select u.*, now()
      from unnest(
             ${sql.val(uuids)}::uuid[],
             ${sql.val(all.map((e) => e.base.host))}::text[],
             ${sql.val(all.map((e) => e.base.powerState))}::smallint[],
             ${sql.val(all.map((e) => e.base.vmState))}::text[],
             ${sql.val(all.map((e) => e.base.taskState))}::text[],
             ${sql.val(all.map((e) => e.base.deleted))}::boolean[],
             ${sql.val(all.map((e) => e.state.powerState))}::smallint[],
             ${sql.val(all.map((e) => e.state.vmState))}::text[],
             ${sql.val(all.map((e) => e.missedReports))}::smallint[],
             ${sql.val(all.map((e) => e.lastLook?.host ?? null))}::text[],
             ${sql.val(all.map((e) => e.lastLook?.epoch ?? null))}::bigint[],
             ${sql.val(all.map((e) => e.lastLook?.seq ?? null))}::bigint[]
           ) as u(uuid, base_host, base_power_state, base_vm_state, base_task_state, base_deleted,
                  shadow_power_state, shadow_vm_state, missed_reports, look_host, look_epoch, look_seq)
    on conflict (uuid) do update
       set base_host = excluded.base_host,
           base_power_state = excluded.base_power_state,
           base_vm_state = excluded.base_vm_state,
           base_task_state = excluded.base_task_state,
           base_deleted = excluded.base_deleted,
           shadow_power_state = excluded.shadow_power_state,
           shadow_vm_state = excluded.shadow_vm_state,
           missed_reports = excluded.missed_reports,
           look_host = excluded.look_host,
           look_epoch = excluded.look_epoch,
           look_seq = excluded.look_seq,
           updated_at = now()`.execute(trx);
}

/** A writer that starts writing decides on the real table: the shadow is dropped; returns how many entries. */
export async function clearShadow(db: Db): Promise<number> {
  const result = await db.deleteFrom('instance_sync_shadow').executeTakeFirst();
  return Number(result.numDeletedRows);
}
