/**
 * The seed's way, for comparison on the same fleet: Nova's `_sync_power_states` loop as
 * the seed document gives it. Host after host; for each host, its rows in one query and
 * the hypervisor's domain count, then row after row: look the domain up by UUID, get its
 * info, re-read the row if the domain is not found, apply the rules, and write each
 * change with one autocommitted UPDATE. One libvirt connection per host is opened before
 * the host's timed loop (the seed's driver keeps its connection), one database connection.
 */
import { Hypervisor } from '@unraid/libvirt';
import pg from 'pg';
import { fromLibvirtState, type PowerState } from '../../shared/power-state.ts';
import { decide, type InstanceSnapshot, SEED_POLICY } from '../../shared/sync-rules.ts';
import type { VmState } from '../../shared/vm-state.ts';

const ROW_COLUMNS = 'uuid, host, power_state, vm_state, task_state, deleted_at';

interface RowRecord {
  uuid: string;
  host: string;
  power_state: number;
  vm_state: string;
  task_state: string | null;
  deleted_at: Date | null;
}

function snapshotOf(row: RowRecord): InstanceSnapshot {
  return {
    host: row.host,
    powerState: row.power_state as PowerState,
    vmState: row.vm_state as VmState,
    deleted: row.deleted_at !== null,
    taskState: row.task_state,
    // The seed keeps no bookkeeping: no miss count, no look order, every row as read.
    missedReports: 0,
    lastLook: null,
    written: null,
  };
}

export interface BaselineResult {
  /** Sum of the hosts' timed loops (rows, count, lookups, updates), ms. */
  loopMs: number;
  /** Opening and closing the hosts' libvirt connections, outside the loops, ms. */
  connectMs: number;
  rows: number;
  libvirtCalls: number;
  changes: number;
  hosts: number;
}

export async function runSeedBaseline(options: {
  hosts: readonly string[];
  uriOf: (host: string) => string;
  databaseUrl: string;
  /** Give up (throw) after this Date.now(). */
  deadlineAt: number;
  onProgress?: (hostsDone: number) => void;
}): Promise<BaselineResult> {
  const client = new pg.Client({ connectionString: options.databaseUrl });
  await client.connect();
  const result: BaselineResult = { loopMs: 0, connectMs: 0, rows: 0, libvirtCalls: 0, changes: 0, hosts: 0 };
  try {
    for (const host of options.hosts) {
      if (Date.now() > options.deadlineAt) throw new Error(`baseline ran out of time after ${result.hosts} hosts`);
      const c0 = performance.now();
      const hypervisor = new Hypervisor({ uri: options.uriOf(host) });
      await hypervisor.connectOpen();
      const t0 = performance.now();
      try {
        const { rows } = await client.query<RowRecord>(`select ${ROW_COLUMNS} from instances where host = $1 and deleted_at is null`, [host]);
        // The seed compares counts first (a mismatch is only a warning).
        await hypervisor.connectListAllDomains();
        result.libvirtCalls++;
        for (const row of rows) {
          let state: PowerState | null;
          let current: InstanceSnapshot | undefined = snapshotOf(row);
          try {
            const domain = await hypervisor.domainLookupByUUIDString(row.uuid);
            const info = await hypervisor.domainGetInfo(domain);
            result.libvirtCalls += 2;
            state = fromLibvirtState(info.state) ?? null;
          } catch (err) {
            result.libvirtCalls++;
            if (!/domain not found/i.test((err as Error).message)) throw err;
            state = null;
            // instance_get_by_uuid: has it moved, is it migrating in, is it gone?
            const fresh = await client.query<RowRecord>(`select ${ROW_COLUMNS} from instances where uuid = $1`, [row.uuid]);
            const freshRow = fresh.rows[0];
            current = freshRow === undefined ? undefined : snapshotOf(freshRow);
          }
          // One process reading fresh state: no bookkeeping, so no look to order and nothing changed since the read.
          const look = { epoch: 1, seq: 1 };
          const decision = decide({ host, powerState: state, look, expected: current ?? snapshotOf(row) }, current, SEED_POLICY);
          if (decision.action !== 'update') continue;
          await client.query('update instances set power_state = $1, vm_state = $2, updated_at = now() where uuid = $3', [
            decision.powerState,
            decision.vmState,
            row.uuid,
          ]);
          result.changes++;
        }
        result.rows += rows.length;
      } finally {
        const t1 = performance.now();
        result.loopMs += t1 - t0;
        await hypervisor.connectClose();
        result.connectMs += t0 - c0 + (performance.now() - t1);
      }
      result.hosts++;
      if (result.hosts % 100 === 0) options.onProgress?.(result.hosts);
    }
  } finally {
    await client.end();
  }
  return result;
}
