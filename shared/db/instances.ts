import { sql, type Transaction } from 'kysely';
import type { PowerState } from '../power-state.ts';
import type { InstanceSnapshot } from '../sync-rules.ts';
import { shadowAwaitsReport } from '../sync-shadow.ts';
import type { VmState } from '../vm-state.ts';
import type { Database, Db } from './database.ts';
import { JOINED_SHADOW_COLUMNS, joinedShadowOf } from './sync-shadow.ts';

/** What an agent needs of a row to compare it with its hypervisor, and to tell the writer what it read. */
export interface HostInstance {
  uuid: string;
  powerState: PowerState;
  vmState: VmState;
  taskState: string | null;
  /** > 0: the writer is counting misses and needs to hear when the instance is found again. */
  missedReports: number;
  /** A report-only writer's shadow has the row elsewhere (or counts misses): it needs to hear the instance's state even when it agrees with the row. */
  shadowed: boolean;
}

/** A host's live rows, with the report-only shadow's entries of them: one indexed read per tick (instances_host_live_idx). */
export async function readHostInstances(db: Db, host: string): Promise<HostInstance[]> {
  const rows = await liveRows(db).where('i.host', '=', host).execute();
  return rows.map(toHostInstance);
}

/** One live instance wherever it is, for the agent's per-domain look after a lifecycle event. */
export async function readLiveInstance(db: Db, uuid: string): Promise<(HostInstance & { host: string }) | undefined> {
  const row = await liveRows(db).where('i.uuid', '=', uuid).executeTakeFirst();
  return row === undefined ? undefined : { ...toHostInstance(row), host: row.host };
}

function liveRows(db: Db) {
  return db
    .selectFrom('instances as i')
    .leftJoin('instance_sync_state as s', 's.uuid', 'i.uuid')
    .leftJoin('instance_sync_shadow as sh', 'sh.uuid', 'i.uuid')
    .select(['i.uuid', 'i.host', 'i.power_state', 'i.vm_state', 'i.task_state', 's.missed_reports', ...JOINED_SHADOW_COLUMNS])
    .where('i.deleted_at', 'is', null);
}

type LiveRow = Awaited<ReturnType<ReturnType<typeof liveRows>['executeTakeFirstOrThrow']>>;

function toHostInstance(row: LiveRow): HostInstance {
  const cloud = { host: row.host, powerState: row.power_state, vmState: row.vm_state, taskState: row.task_state, deleted: false };
  return {
    uuid: row.uuid,
    powerState: row.power_state,
    vmState: row.vm_state,
    taskState: row.task_state,
    missedReports: row.missed_reports ?? 0,
    shadowed: shadowAwaitsReport(joinedShadowOf(row), cloud),
  };
}

/**
 * Locks and re-reads the rows a batch touches, then reads virtsync's bookkeeping of them.
 * Rows are locked in uuid order, so two writers holding overlapping batches queue up behind
 * each other instead of deadlocking. The bookkeeping is read in a statement of its own, after
 * the locks are held: under READ COMMITTED a statement that waited for a lock sees the locked
 * row as committed but every other table as of its start, so a join would pair the newest row
 * with the bookkeeping from before the writer that held the lock.
 */
export async function lockInstances(trx: Transaction<Database>, uuids: readonly string[]): Promise<Map<string, InstanceSnapshot>> {
  if (uuids.length === 0) return new Map();
  const wanted = sql<string>`any(${sql.val([...uuids])}::uuid[])`;
  const rows = await trx
    .selectFrom('instances')
    .select(['uuid', 'host', 'power_state', 'vm_state', 'task_state', 'deleted_at'])
    .where('uuid', '=', wanted)
    .orderBy('uuid')
    .forUpdate()
    .execute();
  const kept = await trx
    .selectFrom('instance_sync_state')
    .select(['uuid', 'missed_reports', 'look_host', 'look_epoch', 'look_seq', 'written_power_state', 'written_vm_state'])
    .where('uuid', '=', wanted)
    .execute();
  const bookkeeping = new Map(kept.map((row) => [row.uuid, row]));
  return new Map(
    rows.map((row) => {
      const own = bookkeeping.get(row.uuid);
      const snapshot: InstanceSnapshot = {
        host: row.host,
        powerState: row.power_state,
        vmState: row.vm_state,
        taskState: row.task_state,
        deleted: row.deleted_at !== null,
        missedReports: own?.missed_reports ?? 0,
        lastLook:
          own?.look_host == null || own.look_epoch === null || own.look_seq === null
            ? null
            : { host: own.look_host, epoch: Number(own.look_epoch), seq: Number(own.look_seq) },
        written: own?.written_power_state == null || own.written_vm_state === null ? null : { powerState: own.written_power_state, vmState: own.written_vm_state },
      };
      return [row.uuid, snapshot];
    }),
  );
}

/** A row's state after the batch's decisions (see nextSnapshot in shared/sync-rules.ts). */
export interface SyncStateWrite {
  uuid: string;
  state: InstanceSnapshot;
  /** The decision changed power_state/vm_state: the cloud's row is written, not only virtsync's bookkeeping. */
  changesRow: boolean;
  /** The agent's stamp of the look, kept for display. */
  observedAt: string;
}

/** Two statements for the whole batch: the changed rows, then virtsync's bookkeeping of every decided row. */
export async function writeSyncStates(trx: Transaction<Database>, writes: readonly SyncStateWrite[]): Promise<void> {
  const changed = writes.filter((write) => write.changesRow);
  if (changed.length > 0) {
    await sql`
      update instances as i
         set power_state = u.power_state,
             vm_state = u.vm_state,
             updated_at = now()
        from unnest(
               ${sql.val(changed.map((w) => w.uuid))}::uuid[],
               ${sql.val(changed.map((w) => w.state.powerState))}::smallint[],
               ${sql.val(changed.map((w) => w.state.vmState))}::text[]
             ) as u(uuid, power_state, vm_state)
       where i.uuid = u.uuid`.execute(trx);
  }
  if (writes.length === 0) return;
  await sql`
    insert into instance_sync_state as s
           (uuid, look_host, look_epoch, look_seq, written_power_state, written_vm_state, missed_reports, observed_at, updated_at)
    select u.uuid, u.look_host, u.look_epoch, u.look_seq, u.written_power_state, u.written_vm_state, u.missed_reports, u.observed_at, now()
      from unnest(
             ${sql.val(writes.map((w) => w.uuid))}::uuid[],
             ${sql.val(writes.map((w) => w.state.lastLook?.host ?? null))}::text[],
             ${sql.val(writes.map((w) => w.state.lastLook?.epoch ?? null))}::bigint[],
             ${sql.val(writes.map((w) => w.state.lastLook?.seq ?? null))}::bigint[],
             ${sql.val(writes.map((w) => w.state.written?.powerState ?? null))}::smallint[],
             ${sql.val(writes.map((w) => w.state.written?.vmState ?? null))}::text[],
             ${sql.val(writes.map((w) => w.state.missedReports))}::smallint[],
             ${sql.val(writes.map((w) => w.observedAt))}::timestamptz[]
           ) as u(uuid, look_host, look_epoch, look_seq, written_power_state, written_vm_state, missed_reports, observed_at)
    on conflict (uuid) do update
       set look_host = excluded.look_host,
           look_epoch = excluded.look_epoch,
           look_seq = excluded.look_seq,
           written_power_state = excluded.written_power_state,
           written_vm_state = excluded.written_vm_state,
           missed_reports = excluded.missed_reports,
           observed_at = excluded.observed_at,
           updated_at = now()`.execute(trx);
}
