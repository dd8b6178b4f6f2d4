/** Report-only mode's shadow (instance_sync_shadow, migration 0009): see shared/sync-shadow.ts. */
import { type Insertable, sql, type Transaction } from 'kysely';
import type { ShadowEntry, ShadowSummary } from '../sync-shadow.ts';
import type { Database, Db, InstanceSyncShadowTable } from './database.ts';

/** An instance_sync_shadow row as selected. */
export type ShadowRow = Pick<
  InstanceSyncShadowTable,
  'base_host' | 'base_power_state' | 'base_vm_state' | 'base_task_state' | 'base_deleted' | 'shadow_power_state' | 'shadow_vm_state' | 'look_host'
> & { missed_reports: number; look_epoch: string | null; look_seq: string | null };

/** The shadow's columns an agent's read left-joins onto its rows (apart from instance_sync_state's `missed_reports`). */
export const JOINED_SHADOW_COLUMNS = [
  'sh.base_host',
  'sh.base_power_state',
  'sh.base_vm_state',
  'sh.base_task_state',
  'sh.base_deleted',
  'sh.shadow_power_state',
  'sh.shadow_vm_state',
  'sh.missed_reports as shadow_missed_reports',
] as const;

type Nullable<T> = { [K in keyof T]: T[K] | null };
type SummaryColumns = Pick<ShadowRow, 'base_host' | 'base_power_state' | 'base_vm_state' | 'base_task_state' | 'base_deleted' | 'shadow_power_state' | 'shadow_vm_state'> & {
  shadow_missed_reports: number;
};

/** What an agent needs of an entry; undefined when the left join found none. */
export function joinedShadowOf(row: Nullable<SummaryColumns>): ShadowSummary | undefined {
  const { base_host, base_power_state, base_vm_state, base_deleted, shadow_power_state, shadow_vm_state, shadow_missed_reports } = row;
  if (base_host === null || base_power_state === null || base_vm_state === null || base_deleted === null) return undefined;
  if (shadow_power_state === null || shadow_vm_state === null || shadow_missed_reports === null) return undefined;
  return summaryOf({ base_host, base_power_state, base_vm_state, base_task_state: row.base_task_state, base_deleted, shadow_power_state, shadow_vm_state, shadow_missed_reports });
}

function summaryOf(row: SummaryColumns): ShadowSummary {
  return {
    base: { host: row.base_host, powerState: row.base_power_state, vmState: row.base_vm_state, taskState: row.base_task_state, deleted: row.base_deleted },
    state: { powerState: row.shadow_power_state, vmState: row.shadow_vm_state },
    missedReports: row.shadow_missed_reports,
  };
}

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

function shadowEntryOf(row: ShadowRow): ShadowEntry {
  return {
    ...summaryOf({ ...row, shadow_missed_reports: row.missed_reports }),
    lastLook: row.look_host === null || row.look_epoch === null || row.look_seq === null ? null : { host: row.look_host, epoch: Number(row.look_epoch), seq: Number(row.look_seq) },
  };
}

/** One statement for the whole batch. */
export async function writeShadowEntries(trx: Transaction<Database>, entries: ReadonlyMap<string, ShadowEntry>): Promise<void> {
  if (entries.size === 0) return;
  await trx
    .insertInto('instance_sync_shadow')
    .values([...entries].map(([uuid, entry]) => shadowRowOf(uuid, entry)))
    .onConflict((conflict) =>
      conflict.column('uuid').doUpdateSet((eb) => ({
        base_host: eb.ref('excluded.base_host'),
        base_power_state: eb.ref('excluded.base_power_state'),
        base_vm_state: eb.ref('excluded.base_vm_state'),
        base_task_state: eb.ref('excluded.base_task_state'),
        base_deleted: eb.ref('excluded.base_deleted'),
        shadow_power_state: eb.ref('excluded.shadow_power_state'),
        shadow_vm_state: eb.ref('excluded.shadow_vm_state'),
        missed_reports: eb.ref('excluded.missed_reports'),
        look_host: eb.ref('excluded.look_host'),
        look_epoch: eb.ref('excluded.look_epoch'),
        look_seq: eb.ref('excluded.look_seq'),
        updated_at: sql<Date>`now()`,
      })),
    )
    .execute();
}

function shadowRowOf(uuid: string, entry: ShadowEntry): Insertable<InstanceSyncShadowTable> {
  return {
    uuid,
    base_host: entry.base.host,
    base_power_state: entry.base.powerState,
    base_vm_state: entry.base.vmState,
    base_task_state: entry.base.taskState,
    base_deleted: entry.base.deleted,
    shadow_power_state: entry.state.powerState,
    shadow_vm_state: entry.state.vmState,
    missed_reports: entry.missedReports,
    look_host: entry.lastLook?.host ?? null,
    look_epoch: entry.lastLook?.epoch ?? null,
    look_seq: entry.lastLook?.seq ?? null,
  };
}

/** A writer that starts writing decides on the real table: the shadow is dropped; returns how many entries. */
export async function clearShadow(db: Db): Promise<number> {
  const result = await db.deleteFrom('instance_sync_shadow').executeTakeFirst();
  return Number(result.numDeletedRows);
}
