/** Compares the instances table row by row with the end state each scenario expects. */
import type { Kysely } from 'kysely';
import type { Database } from '../../shared/db/database.ts';
import type { FleetPlan } from './fleet-plan.ts';

export interface Mismatch {
  uuid: string;
  scenario: string;
  expected: string;
  actual: string;
}

export async function verifyFleet(db: Kysely<Database>, plan: FleetPlan): Promise<Mismatch[]> {
  const rows = await db.selectFrom('instances').select(['uuid', 'host', 'power_state', 'vm_state', 'deleted_at']).execute();
  const byUuid = new Map(rows.map((row) => [row.uuid, row]));
  const mismatches: Mismatch[] = [];
  for (const instance of plan.instances) {
    const { scenario } = instance;
    const row = byUuid.get(instance.uuid);
    const expected =
      scenario.expected === null
        ? 'no row'
        : `host=${instance.destination ?? instance.host} power=${scenario.expected.powerState} vm=${scenario.expected.vmState} deleted=${scenario.race === 'soft-delete'}`;
    const actual = row === undefined ? 'no row' : `host=${row.host} power=${row.power_state} vm=${row.vm_state} deleted=${row.deleted_at !== null}`;
    if (expected !== actual) mismatches.push({ uuid: instance.uuid, scenario: scenario.name, expected, actual });
  }
  return mismatches;
}
