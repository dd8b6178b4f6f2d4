/**
 * Report-only mode: decided as in write mode, but only the shadow is written
 * (instance_sync_shadow) and each change the real row would get goes out as a proposal.
 * instances and instance_sync_state are not touched.
 */
import type { InstanceSnapshot, SyncPolicy } from '../../shared/sync-rules.ts';
import type { ProposedChange } from '../../shared/messages/proposed-change.ts';
import { writeShadowEntries } from '../../shared/db/sync-shadow.ts';
import { decideInShadow, type ShadowEntry } from '../../shared/sync-shadow.ts';
import { eventBody, type Ledger, outboxEventOf } from './ledger.ts';

export function createShadowLedger(rows: ReadonlyMap<string, InstanceSnapshot>, entries: Map<string, ShadowEntry>, policy: SyncPolicy, decidedAt: string): Ledger {
  const decided = new Map<string, ShadowEntry>();
  const proposals: ProposedChange[] = [];
  return {
    decide(observation, observed) {
      const uuid = observation.instanceUuid;
      const row = rows.get(uuid);
      const step = decideInShadow(observed, row, entries.get(uuid), policy);
      if (step.entry !== undefined) {
        entries.set(uuid, step.entry);
        decided.set(uuid, step.entry);
      }
      if (row !== undefined && step.proposal !== undefined) {
        const { rule, before, after } = step.proposal;
        proposals.push({ ...eventBody(observation, row.host, rule, before, after), decidedAt });
      }
      return step.decision;
    },
    async write(trx) {
      await writeShadowEntries(trx, decided);
      return { changes: [], proposals, outbox: proposals.map((proposal) => outboxEventOf(proposal, 'proposed')) };
    },
  };
}
