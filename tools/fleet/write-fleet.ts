/** Writes a planned fleet: one node XML per host, and the matching compute_hosts and instances rows. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Kysely, sql } from 'kysely';
import type { Database, NewInstance } from '../../shared/db/database.ts';
import type { FleetPlan } from './fleet-plan.ts';
import { renderNodeXml, type SimulatedDomain } from './node-xml.ts';

const INSERT_CHUNK = 1_000;

export function nodeXmlPath(fleetDir: string, host: string): string {
  return path.join(fleetDir, `${host}.xml`);
}

/** The libvirt URI template that points an agent at the fleet's XML files. */
export function fleetLibvirtUri(fleetDir: string): string {
  return `test://${path.resolve(fleetDir)}/{host}.xml`;
}

export async function writeNodeXmlFiles(plan: FleetPlan, fleetDir: string): Promise<void> {
  await mkdir(fleetDir, { recursive: true });
  const domainsByHost = new Map<string, SimulatedDomain[]>(plan.hosts.map((host) => [host, []]));
  for (const instance of plan.instances) {
    const { domain } = instance.scenario;
    if (domain !== null) domainsByHost.get(instance.host)?.push({ uuid: instance.uuid, state: domain });
    // A finished migration: the domain already runs on its destination.
    if (instance.destination !== null) domainsByHost.get(instance.destination)?.push({ uuid: instance.uuid, state: instance.scenario.row.powerState });
  }
  await Promise.all(plan.hosts.map((host) => writeFile(nodeXmlPath(fleetDir, host), renderNodeXml(domainsByHost.get(host) ?? []))));
}

export async function insertFleetRows(db: Kysely<Database>, plan: FleetPlan, onProgress?: (done: number, total: number) => void): Promise<void> {
  await db.insertInto('compute_hosts').values(plan.hosts.map((host) => ({ host }))).execute();
  const createdAt = new Date(Date.now() - 60_000);
  const rows: NewInstance[] = plan.instances.map((instance) => ({
    uuid: instance.uuid,
    host: instance.host,
    power_state: instance.scenario.row.powerState,
    vm_state: instance.scenario.row.vmState,
    power_state_updated_at: createdAt,
    created_at: createdAt,
    updated_at: createdAt,
  }));
  for (let start = 0; start < rows.length; start += INSERT_CHUNK) {
    await db.insertInto('instances').values(rows.slice(start, start + INSERT_CHUNK)).execute();
    onProgress?.(Math.min(start + INSERT_CHUNK, rows.length), rows.length);
  }
}

/** What the cloud does while observations are in flight: migrations finish, instances are deleted. */
export async function applyRaces(db: Kysely<Database>, plan: FleetPlan): Promise<void> {
  await db.transaction().execute(async (trx) => {
    for (const instance of plan.instances) {
      switch (instance.scenario.race) {
        case 'migrate-away':
          await trx.updateTable('instances').set({ host: instance.destination as string, updated_at: sql`now()` }).where('uuid', '=', instance.uuid).execute();
          break;
        case 'soft-delete':
          await trx.updateTable('instances').set({ deleted_at: sql`now()`, updated_at: sql`now()` }).where('uuid', '=', instance.uuid).execute();
          break;
        case 'hard-delete':
          await trx.deleteFrom('instances').where('uuid', '=', instance.uuid).execute();
          break;
        case null:
          break;
      }
    }
  });
}
