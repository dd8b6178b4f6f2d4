import { sql, type Transaction } from 'kysely';
import type { PowerState } from '../power-state.ts';
import type { InstanceSnapshot } from '../sync-rules.ts';
import type { VmState } from '../vm-state.ts';
import type { Database, Db } from './database.ts';

/** What an agent needs of a row to compare it with its hypervisor. */
export interface HostInstance {
  uuid: string;
  powerState: PowerState;
  vmState: VmState;
  /** > 0: the writer is counting misses and needs to hear when the instance is found again. */
  missedReports: number;
}

/** A host's live rows: one indexed read per tick (instances_host_live_idx). */
export async function readHostInstances(db: Db, host: string): Promise<HostInstance[]> {
  const rows = await db
    .selectFrom('instances')
    .select(['uuid', 'power_state', 'vm_state', 'missed_reports'])
    .where('host', '=', host)
    .where('deleted_at', 'is', null)
    .execute();
  return rows.map((row) => ({ uuid: row.uuid, powerState: row.power_state, vmState: row.vm_state, missedReports: row.missed_reports }));
}

/** Where one live instance is, for the agent's per-domain sync after a lifecycle event. */
export async function readInstanceLocation(
  db: Db,
  uuid: string,
): Promise<{ host: string; powerState: PowerState; missedReports: number } | undefined> {
  const row = await db
    .selectFrom('instances')
    .select(['host', 'power_state', 'missed_reports'])
    .where('uuid', '=', uuid)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return row === undefined ? undefined : { host: row.host, powerState: row.power_state, missedReports: row.missed_reports };
}

/**
 * Locks and re-reads the rows a batch touches. Rows are locked in uuid order, so two
 * writers holding overlapping batches queue up behind each other instead of deadlocking.
 */
export async function lockInstances(trx: Transaction<Database>, uuids: readonly string[]): Promise<Map<string, InstanceSnapshot>> {
  if (uuids.length === 0) return new Map();
  const rows = await trx
    .selectFrom('instances')
    .select(['uuid', 'host', 'power_state', 'vm_state', 'task_state', 'deleted_at', 'power_state_updated_at', 'missed_reports', 'last_missed_at'])
    .where('uuid', '=', sql<string>`any(${sql.val([...uuids])}::uuid[])`)
    .orderBy('uuid')
    .forUpdate()
    .execute();
  return new Map(
    rows.map((row) => [
      row.uuid,
      {
        host: row.host,
        powerState: row.power_state,
        vmState: row.vm_state,
        deleted: row.deleted_at !== null,
        powerStateUpdatedAt: row.power_state_updated_at,
        taskState: row.task_state,
        missedReports: row.missed_reports,
        lastMissedAt: row.last_missed_at,
      },
    ]),
  );
}

/** A row's sync state after the batch's decisions (see nextSnapshot in shared/sync-rules.ts). */
export interface SyncStateWrite {
  uuid: string;
  state: InstanceSnapshot;
}

/** One statement for the whole batch. */
export async function writeSyncStates(trx: Transaction<Database>, writes: readonly SyncStateWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const iso = (date: Date | null): string | null => date?.toISOString() ?? null;
  await sql`
    update instances as i
       set power_state = u.power_state,
           vm_state = u.vm_state,
           power_state_updated_at = u.power_state_updated_at,
           missed_reports = u.missed_reports,
           last_missed_at = u.last_missed_at,
           updated_at = now()
      from unnest(
             ${sql.val(writes.map((w) => w.uuid))}::uuid[],
             ${sql.val(writes.map((w) => w.state.powerState))}::smallint[],
             ${sql.val(writes.map((w) => w.state.vmState))}::text[],
             ${sql.val(writes.map((w) => iso(w.state.powerStateUpdatedAt)))}::timestamptz[],
             ${sql.val(writes.map((w) => w.state.missedReports))}::smallint[],
             ${sql.val(writes.map((w) => iso(w.state.lastMissedAt)))}::timestamptz[]
           ) as u(uuid, power_state, vm_state, power_state_updated_at, missed_reports, last_missed_at)
     where i.uuid = u.uuid`.execute(trx);
}
