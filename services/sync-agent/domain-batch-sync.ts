/**
 * Many domains of one host observed at once, after a burst of lifecycle events: the host's
 * rows (one indexed read, before libvirt is asked, as every look does), one bulk read of the
 * host, and the named domains' observations in as few messages as the contract allows. Per
 * domain it decides what the single-domain path decides: no live row here → unknown domain,
 * otherwise needsObservation against the row read first.
 */
import type { Breaker } from '../../shared/breaker.ts';
import type { Db } from '../../shared/db/database.ts';
import { readHostInstances } from '../../shared/db/instances.ts';
import { discrepanciesFound, observationsPublished } from '../../shared/metrics.ts';
import type { Observation } from '../../shared/messages/observation.ts';
import type { UnknownDomain } from '../../shared/messages/unknown-domain.ts';
import type { AgentPublications } from './agent-publications.ts';
import { expectedRowOf, needsObservation } from './host-comparison.ts';
import type { HypervisorReader } from './hypervisor-reader.ts';
import type { LookClock } from './look-clock.ts';
import { stateReasonFields } from './state-reason.ts';

export interface DomainBatchOutcome {
  observed: number;
  unknown: number;
  inSync: number;
  /** Names libvirt no longer knows (or in a state virtsync does not know): only a tick can tell which row. */
  gone: number;
}

export interface DomainBatchSync {
  syncDomains(host: string, domainNames: readonly string[]): Promise<DomainBatchOutcome>;
}

export function createDomainBatchSync(deps: {
  db: Db;
  publish: AgentPublications;
  readerFor: (host: string) => HypervisorReader;
  dbBreaker: Breaker;
  lookClock: LookClock;
  /** The agent's clock for observedAt (shown and audited, never used to order anything). */
  now: () => number;
}): DomainBatchSync {
  return {
    async syncDomains(host, domainNames) {
      const [rows, epoch] = await Promise.all([deps.dbBreaker.run(() => readHostInstances(deps.db, host)), deps.lookClock.epoch()]);
      const observedAt = new Date(deps.now()).toISOString();
      const snapshot = await deps.readerFor(host).read();
      const look = deps.lookClock.next(epoch);
      const rowOf = new Map(rows.map((row) => [row.uuid, row]));
      const names = new Set(domainNames);
      const observations: Array<Omit<Observation, 'observationId'>> = [];
      const unknown: Array<Omit<UnknownDomain, 'schemaVersion'>> = [];
      let found = 0;
      for (const name of names) {
        const uuid = snapshot.uuidOfName(name);
        const state = uuid === undefined ? undefined : snapshot.states.get(uuid);
        if (uuid === undefined || state === undefined) continue;
        found++;
        const row = rowOf.get(uuid);
        if (row === undefined) unknown.push({ host, instanceUuid: uuid, powerState: state, observedAt, trigger: 'event' });
        else if (needsObservation(row, state)) {
          const reason = stateReasonFields(row, state, snapshot.reasons.get(uuid));
          observations.push({ instanceUuid: uuid, host, powerState: state, expected: expectedRowOf(row), ...reason, observedAt, look, trigger: 'event', tickId: null });
        }
      }
      await Promise.all([observations.length > 0 ? deps.publish.observations(observations) : undefined, ...unknown.map((u) => deps.publish.unknownDomain(u))]);
      observationsPublished.inc({ trigger: 'event' }, observations.length);
      discrepanciesFound.inc({ kind: 'unknown' }, unknown.length);
      return { observed: observations.length, unknown: unknown.length, inSync: found - observations.length - unknown.length, gone: names.size - found };
    },
  };
}
