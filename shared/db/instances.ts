import { type Kysely, sql, type Transaction } from 'kysely';
import type { PowerState } from '../power-state.ts';
import type { InstanceSnapshot } from '../sync-rules.ts';
import type { VmState } from '../vm-state.ts';
import type { Database } from './database.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** What an agent needs of a row to compare it with its hypervisor. */
export interface HostInstance {
  uuid: string;
  powerState: PowerState;
  vmState: VmState;
}

/** A host's live rows: one indexed read per tick (instances_host_live_idx). */
export async function readHostInstances(db: Db, host: string): Promise<HostInstance[]> {
  const rows = await db
    .selectFrom('instances')
    .select(['uuid', 'power_state', 'vm_state'])
    .where('host', '=', host)
    .where('deleted_at', 'is', null)
    .execute();
  return rows.map((row) => ({ uuid: row.uuid, powerState: row.power_state, vmState: row.vm_state }));
}

/**
 * Locks and re-reads the rows a batch touches. Rows are locked in uuid order, so two
 * writers holding overlapping batches queue up behind each other instead of deadlocking.
 */
export async function lockInstances(trx: Transaction<Database>, uuids: readonly string[]): Promise<Map<string, InstanceSnapshot>> {
  if (uuids.length === 0) return new Map();
  const rows = await trx
    .selectFrom('instances')
    .select(['uuid', 'host', 'power_state', 'vm_state', 'deleted_at', 'power_state_updated_at'])
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
      },
    ]),
  );
}

export interface PowerStateUpdate {
  uuid: string;
  powerState: PowerState;
  vmState: VmState;
  /** Becomes power_state_updated_at, so anything observed earlier is recognised as stale. */
  observedAt: Date;
}

/** One statement for the whole batch. */
export async function updatePowerStates(trx: Transaction<Database>, updates: readonly PowerStateUpdate[]): Promise<void> {
  if (updates.length === 0) return;
  await sql`
    update instances as i
       set power_state = u.power_state,
           vm_state = u.vm_state,
           power_state_updated_at = u.observed_at,
           updated_at = now()
      from unnest(
             ${sql.val(updates.map((u) => u.uuid))}::uuid[],
             ${sql.val(updates.map((u) => u.powerState))}::smallint[],
             ${sql.val(updates.map((u) => u.vmState))}::text[],
             ${sql.val(updates.map((u) => u.observedAt.toISOString()))}::timestamptz[]
           ) as u(uuid, power_state, vm_state, observed_at)
     where i.uuid = u.uuid`.execute(trx);
}
