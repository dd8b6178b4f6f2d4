/**
 * Many domains of one host observed at once, after a burst of lifecycle events: one bulk
 * read of the host (the same call a tick makes), one read of their rows, and their
 * observations in as few messages as the contract allows. What it decides per domain is
 * what the single-domain path decides (needsObservation; no row here → unknown domain).
 */
import type { Kysely } from 'kysely';
import type { Breaker } from '../../shared/breaker.ts';
import type { Database } from '../../shared/db/database.ts';
import { readInstanceLocations } from '../../shared/db/instances.ts';
import { discrepanciesFound, observationsPublished } from '../../shared/metrics.ts';
import type { PowerState } from '../../shared/power-state.ts';
import type { AgentPublications } from './agent-publications.ts';
import { needsObservation } from './host-comparison.ts';
import type { HypervisorReader } from './hypervisor-reader.ts';

export interface DomainBatchOutcome {
  observed: number;
  unknown: number;
  inSync: number;
  /** Names libvirt no longer knows (or in a state virtsync does not know): only a tick can tell which row. */
  gone: number;
}

export function createDomainBatchSync(deps: {
  db: Kysely<Database>;
  publish: AgentPublications;
  readerFor: (host: string) => HypervisorReader;
  dbBreaker: Breaker;
}): { syncDomains(host: string, domainNames: readonly string[]): Promise<DomainBatchOutcome> } {
  return {
    async syncDomains(host, domainNames) {
      const observedAt = new Date().toISOString();
      const snapshot = await deps.readerFor(host).read();
      const names = new Set(domainNames);
      const found: Array<{ uuid: string; state: PowerState }> = [];
      for (const name of names) {
        const uuid = snapshot.uuidOfName(name);
        const state = uuid === undefined ? undefined : snapshot.states.get(uuid);
        if (uuid !== undefined && state !== undefined) found.push({ uuid, state });
      }
      const rows = await deps.dbBreaker.run(() => readInstanceLocations(deps.db, found.map((domain) => domain.uuid)));
      const observations = [];
      const unknown = [];
      for (const { uuid, state } of found) {
        const row = rows.get(uuid);
        if (row === undefined || row.host !== host) unknown.push({ host, instanceUuid: uuid, powerState: state, observedAt, trigger: 'event' as const });
        else if (needsObservation(row, state)) observations.push({ instanceUuid: uuid, host, powerState: state, observedAt, trigger: 'event' as const, tickId: null });
      }
      await Promise.all([observations.length > 0 ? deps.publish.observations(observations) : undefined, ...unknown.map((u) => deps.publish.unknownDomain(u))]);
      observationsPublished.inc({ trigger: 'event' }, observations.length);
      discrepanciesFound.inc({ kind: 'unknown' }, unknown.length);
      return { observed: observations.length, unknown: unknown.length, inSync: found.length - observations.length - unknown.length, gone: names.size - found.length };
    },
  };
}
