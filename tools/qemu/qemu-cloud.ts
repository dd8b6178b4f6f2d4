/**
 * Playing the cloud on QEMU hosts: boot an instance (a guest plus its row), live-migrate one
 * the way modern Nova does, and check the instances table against what the hypervisors run.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../shared/db/database.ts';
import { coerceError } from '../../shared/errors.ts';
import { PowerState, powerStateName } from '../../shared/power-state.ts';
import { VmState } from '../../shared/vm-state.ts';
import type { QemuHosts } from './qemu-hosts.ts';

export interface QemuInstance {
  uuid: string;
  name: string;
  host: string;
}

/** A running guest and its row, as the cloud records an instance it booted. */
export async function bootInstance(
  db: Kysely<Database>,
  hosts: QemuHosts,
  host: string,
  name: string,
  options: { failingDisk?: boolean } = {},
): Promise<QemuInstance> {
  const uuid = await hosts.defineGuest(host, { name, failingDisk: options.failingDisk });
  await db
    .insertInto('instances')
    .values({ uuid, host, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE, power_state_updated_at: new Date() })
    .execute();
  return { uuid, name, host };
}

export function migrationArgs(name: string, destinationUri: string): string[] {
  // No shut-off copy stays behind on the source, and the destination keeps the definition.
  return ['migrate', '--live', '--persistent', '--undefinesource', name, destinationUri];
}

/**
 * A live migration as Nova's compute manager runs it: task_state `migrating` for the whole
 * move (the sync keeps out of the row's way), the migration, then host = destination and
 * task_state cleared. On failure the row stays on the source, task cleared.
 */
export async function migrateNovaWay(db: Kysely<Database>, hosts: QemuHosts, instance: QemuInstance, to: string): Promise<'migrated' | Error> {
  await db.updateTable('instances').set({ task_state: 'migrating', updated_at: new Date() }).where('uuid', '=', instance.uuid).execute();
  let outcome: 'migrated' | Error = 'migrated';
  try {
    await hosts.virsh(instance.host, ...migrationArgs(instance.name, hosts.uri(to)));
  } catch (err) {
    outcome = coerceError(err);
  }
  const host = outcome === 'migrated' ? to : instance.host;
  await db.updateTable('instances').set({ host, task_state: null, updated_at: new Date() }).where('uuid', '=', instance.uuid).execute();
  if (outcome === 'migrated') instance.host = to;
  return outcome;
}

export interface HypervisorMismatch {
  uuid: string;
  expected: string;
  actual: string;
}

/**
 * Every live row against the hypervisors: the instance runs on the row's host, in the
 * row's power state, and no other host has it. Domains no row names are not checked.
 */
export async function compareWithHypervisors(db: Kysely<Database>, hosts: QemuHosts): Promise<HypervisorMismatch[]> {
  const [rows, domains] = [
    await db.selectFrom('instances').select(['uuid', 'host', 'power_state']).where('deleted_at', 'is', null).execute(),
    await hosts.domains(),
  ];
  const mismatches: HypervisorMismatch[] = [];
  for (const row of rows) {
    const found = domains.filter((domain) => domain.uuid === row.uuid);
    const expected = `${powerStateName(row.power_state)} on ${row.host}`;
    const actual = found.map((domain) => `${powerStateName(domain.state)} on ${domain.host}`).join(', ') || 'on no host';
    if (found.length !== 1 || found[0]?.host !== row.host || found[0]?.state !== row.power_state) {
      // A row the seed set to NOSTATE matches a domain no host has.
      if (!(found.length === 0 && row.power_state === PowerState.NOSTATE)) mismatches.push({ uuid: row.uuid, expected, actual });
    }
  }
  return mismatches;
}
