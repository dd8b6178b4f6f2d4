/**
 * A simulated fleet for the benchmarks: every host the same size, a share of instances
 * drifted, and none of the race scenarios (those need the demo's staged races). Written
 * with the fleet tools (node XML per host, compute_hosts and instances rows); a copy of
 * the rows as generated lets a benchmark run the same cycle again.
 */
import { randomUUID } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../../shared/db/database.ts';
import { UPDATE_RULES, type UpdateRule } from '../../shared/sync-rules.ts';
import type { FleetPlan, PlannedInstance } from '../../tools/fleet/fleet-plan.ts';
import { DRIFT, IN_SYNC, type Scenario } from '../../tools/fleet/scenarios.ts';
import { insertFleetRows, writeNodeXmlFiles } from '../../tools/fleet/write-fleet.ts';
import { seededRandom } from '../../tools/fleet/seeded-random.ts';

export interface BenchFleetOptions {
  hosts: number;
  vmsPerHost: number;
  driftRatio: number;
  seed: number;
  hostPrefix: string;
}

/** Drift scenarios that need nothing staged while observations are in flight. */
export const PLAIN_DRIFT: readonly Scenario[] = DRIFT.filter((scenario) => scenario.race === null);

export function planBenchFleet(options: BenchFleetOptions): FleetPlan {
  const random = seededRandom(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const hosts = Array.from({ length: options.hosts }, (_, i) => `${options.hostPrefix}-${String(i + 1).padStart(5, '0')}`);
  const instances: PlannedInstance[] = [];
  for (const host of hosts) {
    for (let i = 0; i < options.vmsPerHost; i++) {
      const scenario = random() < options.driftRatio ? pick(PLAIN_DRIFT) : pick(IN_SYNC);
      instances.push({ uuid: randomUUID(), host, scenario, destination: null });
    }
  }
  return { hosts, instances };
}

export interface FleetExpectations {
  /** Observations the agents publish: every drifted or missing instance. */
  observations: number;
  /** Changes the writer commits. */
  changes: number;
  byRule: Partial<Record<string, number>>;
}

export function expectationsOf(plan: FleetPlan): FleetExpectations {
  const updateRules: ReadonlySet<string> = new Set<UpdateRule>(UPDATE_RULES);
  const byRule: Partial<Record<string, number>> = {};
  let observations = 0;
  let changes = 0;
  for (const { scenario } of plan.instances) {
    if (scenario.rule === null) continue;
    observations++;
    byRule[scenario.rule] = (byRule[scenario.rule] ?? 0) + 1;
    if (updateRules.has(scenario.rule)) changes++;
  }
  return { observations, changes, byRule };
}

/** Node XML files in `fleetDir`, rows in the database, and a copy of the rows as generated. */
export async function writeBenchFleet(db: Kysely<Database>, plan: FleetPlan, fleetDir: string): Promise<void> {
  await writeNodeXmlFiles(plan, fleetDir);
  await insertFleetRows(db, plan);
  await sql`drop table if exists bench_seed`.execute(db);
  await sql`create table bench_seed as select uuid, power_state, vm_state from instances`.execute(db);
  await sql`alter table bench_seed add primary key (uuid)`.execute(db);
  await sql`analyze instances`.execute(db);
}

/** Puts every row back as generated and empties virtsync's bookkeeping, the outbox and the audit trail: the same cycle can run again. */
export async function restoreBenchFleet(db: Kysely<Database>): Promise<number> {
  const result = await sql`
    update instances as i
       set power_state = s.power_state,
           vm_state = s.vm_state,
           updated_at = now()
      from bench_seed as s
     where s.uuid = i.uuid
       and (i.power_state, i.vm_state) is distinct from (s.power_state, s.vm_state)`.execute(db);
  await sql`truncate instance_sync_state, change_outbox, audit_log, host_sync_reports`.execute(db);
  await sql`vacuum analyze instances`.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

