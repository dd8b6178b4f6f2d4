/**
 * Read-only queries behind `virtsync status`: what the database says about the fleet.
 * Nothing here locks or writes; the `virtsync_reader` role is enough.
 */
import { sql } from 'kysely';
import type { PowerState } from '../power-state.ts';
import type { VmState } from '../vm-state.ts';
import { countRows } from './count-rows.ts';
import type { Db } from './database.ts';

export interface RegisteredHost {
  host: string;
  enabled: boolean;
}

/** Live (not soft-deleted) instances with one combination of host, power state and vm state. */
export interface InstanceStateCount {
  host: string;
  powerState: PowerState;
  vmState: VmState;
  count: number;
}

/** The newest sync report a host sent (host_sync_reports keeps one per host). */
export interface LastHostSync {
  host: string;
  trigger: string;
  outcome: string;
  error: string | null;
  startedAt: Date;
  durationMs: number;
  /** The whole report as stored; parse it with hostReportSchema before use. */
  report: unknown;
}

export async function listRegisteredHosts(db: Db): Promise<RegisteredHost[]> {
  return db.selectFrom('compute_hosts').select(['host', 'enabled']).orderBy('host').execute();
}

/** One grouped scan of the live rows: at most hosts × power states × vm states rows come back. */
export async function countLiveInstancesByState(db: Db): Promise<InstanceStateCount[]> {
  const rows = await db
    .selectFrom('instances')
    .select(['host', 'power_state', 'vm_state', (eb) => eb.fn.countAll<string>().as('count')])
    .where('deleted_at', 'is', null)
    .groupBy(['host', 'power_state', 'vm_state'])
    .execute();
  return rows.map((row) => ({ host: row.host, powerState: row.power_state, vmState: row.vm_state, count: Number(row.count) }));
}

export async function countSoftDeletedInstances(db: Db): Promise<number> {
  return countRows(db.selectFrom('instances').where('deleted_at', 'is not', null));
}

export async function listLastHostSyncs(db: Db): Promise<LastHostSync[]> {
  const rows = await db
    .selectFrom('host_sync_reports')
    .select(['host', 'trigger', 'outcome', 'error', 'started_at', 'duration_ms', 'report'])
    .orderBy('host')
    .execute();
  return rows.map((row) => ({
    host: row.host,
    trigger: row.trigger,
    outcome: row.outcome,
    error: row.error,
    startedAt: row.started_at,
    durationMs: row.duration_ms,
    report: row.report,
  }));
}

/** The database server's clock, so "how long ago" does not depend on the operator's machine. */
export async function readDatabaseNow(db: Db): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select now() as now`.execute(db);
  const now = rows[0]?.now;
  if (!(now instanceof Date)) throw new Error('select now() returned no timestamp');
  return now;
}
