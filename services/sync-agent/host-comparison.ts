/**
 * The agent's half of the seed's loop, as a pure function: which rows disagree with the
 * hypervisor (or are unknown to it) and so need the state writer's decision.
 */
import type { HostInstance } from '../../shared/db/instances.ts';
import type { PowerState } from '../../shared/power-state.ts';
import type { HypervisorSnapshot } from './hypervisor-reader.ts';

export interface Discrepancy {
  uuid: string;
  /** null: the hypervisor does not know this instance. */
  powerState: PowerState | null;
  /** The row as read before the hypervisor was asked: the writer skips the observation if the cloud changed it since. */
  expected: ExpectedRow;
}

export type ExpectedRow = Pick<HostInstance, 'powerState' | 'vmState' | 'taskState'>;

export function expectedRowOf({ powerState, vmState, taskState }: HostInstance): ExpectedRow {
  return { powerState, vmState, taskState };
}

export interface HostComparison {
  discrepancies: Discrepancy[];
  dbCount: number;
  hypervisorCount: number;
  compared: number;
  drifted: number;
  missing: number;
  /** Domains no row places on this host (leaked, or created behind the cloud's back). */
  unknownUuids: string[];
}

/**
 * A found instance is reported when its state differs from the row's, when the writer
 * is counting it as missed (it resets the count only if it hears the instance is back), or
 * when a report-only writer's shadow has it otherwise (it drops that only if it hears).
 */
export function needsObservation(row: Pick<HostInstance, 'powerState' | 'missedReports' | 'shadowed'>, state: PowerState): boolean {
  return state !== row.powerState || row.missedReports > 0 || row.shadowed;
}

export function compareHost(rows: readonly HostInstance[], hypervisor: Pick<HypervisorSnapshot, 'domainCount' | 'states' | 'unreadable'>): HostComparison {
  const discrepancies: Discrepancy[] = [];
  let compared = 0;
  let drifted = 0;
  let missing = 0;
  const known = new Set<string>();
  for (const row of rows) {
    known.add(row.uuid);
    if (hypervisor.unreadable.has(row.uuid)) continue;
    const state = hypervisor.states.get(row.uuid);
    if (state === undefined) {
      missing++;
      discrepancies.push({ uuid: row.uuid, powerState: null, expected: expectedRowOf(row) });
      continue;
    }
    compared++;
    if (state !== row.powerState) drifted++;
    if (needsObservation(row, state)) discrepancies.push({ uuid: row.uuid, powerState: state, expected: expectedRowOf(row) });
  }
  const unknownUuids = [...hypervisor.states.keys(), ...hypervisor.unreadable].filter((uuid) => !known.has(uuid));
  return {
    discrepancies,
    dbCount: rows.length,
    hypervisorCount: hypervisor.domainCount,
    compared,
    drifted,
    missing,
    unknownUuids,
  };
}
