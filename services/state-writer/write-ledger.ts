/** Write mode: each update goes to the cloud's row, every decided look into instance_sync_state, and a change event out. */
import type { ChangeEvent } from '../../shared/messages/change-event.ts';
import { type SyncStateWrite, writeSyncStates } from '../../shared/db/instances.ts';
import { decide, type InstanceSnapshot, nextSnapshot, type SyncPolicy } from '../../shared/sync-rules.ts';
import { eventBody, type Ledger, outboxEventOf } from './ledger.ts';

export function createWriteLedger(rows: Map<string, InstanceSnapshot>, policy: SyncPolicy, committedAt: string): Ledger {
  const writes = new Map<string, SyncStateWrite>();
  const changes: ChangeEvent[] = [];
  return {
    decide(observation, observed) {
      const row = rows.get(observation.instanceUuid);
      const decision = decide(observed, row, policy);
      const next = nextSnapshot(row, decision, observed);
      if (row === undefined || next === undefined) return decision;
      rows.set(observation.instanceUuid, next);
      const changesRow = decision.action === 'update' || writes.get(observation.instanceUuid)?.changesRow === true;
      writes.set(observation.instanceUuid, { uuid: observation.instanceUuid, state: next, changesRow, observedAt: observation.observedAt });
      if (decision.action === 'update') {
        const after = { powerState: decision.powerState, vmState: decision.vmState };
        changes.push({ ...eventBody(observation, row.host, decision.rule, { powerState: row.powerState, vmState: row.vmState }, after), committedAt });
      }
      return decision;
    },
    async write(trx) {
      await writeSyncStates(trx, [...writes.values()]);
      return { changes, proposals: [], outbox: changes.map((change) => outboxEventOf(change, 'instance')) };
    },
  };
}
