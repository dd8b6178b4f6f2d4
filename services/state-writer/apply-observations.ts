/**
 * Commits a batch of observations in one transaction: lock the rows (uuid order), decide
 * each observation against the row as it is now, write all updates in one statement and
 * the change events into the outbox, commit. Nothing here acks; the caller does, after.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { changeRoutingKey } from '../../shared/bus/topology.ts';
import { insertOutboxEvents, type OutboxEvent } from '../../shared/db/change-outbox.ts';
import type { Database } from '../../shared/db/database.ts';
import { lockInstances, type SyncStateWrite, writeSyncStates } from '../../shared/db/instances.ts';
import type { ChangeEvent } from '../../shared/messages/change-event.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import type { Observation } from '../../shared/messages/observation.ts';
import { decide, nextSnapshot, type SyncPolicy, type SyncRule } from '../../shared/sync-rules.ts';

export interface BatchResult {
  changes: ChangeEvent[];
  /** The changes as committed to the outbox, ready to publish. */
  outbox: OutboxEvent[];
  /** How many observations each rule decided. */
  outcomes: Partial<Record<SyncRule, number>>;
  /** Observations whose skip an operator should hear about (moved, migrating in, ...). */
  notable: Array<{ observation: Observation; rule: SyncRule }>;
}

const NOTABLE_SKIPS: ReadonlySet<SyncRule> = new Set(['moved', 'migrating-in', 'in-transition', 'deleted', 'stale-host', 'task-in-progress']);

export async function applyObservations(
  db: Kysely<Database>,
  observations: readonly Observation[],
  policy: SyncPolicy,
): Promise<BatchResult> {
  // Per instance in observation order, so a batch holding two observations of one VM applies both in turn.
  const ordered = [...observations].sort((a, b) => Date.parse(a.observedAt) - Date.parse(b.observedAt));
  return db.transaction().execute(async (trx) => {
    const rows = await lockInstances(trx, [...new Set(ordered.map((o) => o.instanceUuid))]);
    const committedAt = new Date().toISOString();
    const result: BatchResult = { changes: [], outbox: [], outcomes: {}, notable: [] };
    const writes = new Map<string, SyncStateWrite>();

    for (const observation of ordered) {
      const row = rows.get(observation.instanceUuid);
      const observedAt = new Date(observation.observedAt);
      const decision = decide({ host: observation.host, powerState: observation.powerState, reason: observation.reason, observedAt }, row, policy);
      result.outcomes[decision.rule] = (result.outcomes[decision.rule] ?? 0) + 1;
      if (NOTABLE_SKIPS.has(decision.rule)) result.notable.push({ observation, rule: decision.rule });
      const next = nextSnapshot(row, decision, observedAt);
      if (row === undefined || next === undefined) continue;
      rows.set(observation.instanceUuid, next);
      writes.set(observation.instanceUuid, { uuid: observation.instanceUuid, state: next });
      if (decision.action !== 'update') continue;
      result.changes.push({
        schemaVersion: SCHEMA_VERSION,
        eventId: randomUUID(),
        instanceUuid: observation.instanceUuid,
        host: row.host,
        rule: decision.rule,
        before: { powerState: row.powerState, vmState: row.vmState },
        after: { powerState: decision.powerState, vmState: decision.vmState },
        observationId: observation.observationId,
        observedAt: observation.observedAt,
        committedAt,
      });
    }

    await writeSyncStates(trx, [...writes.values()]);
    result.outbox = result.changes.map((change) => ({
      eventId: change.eventId,
      routingKey: changeRoutingKey(change.host, change.after.powerState),
      payload: change,
    }));
    await insertOutboxEvents(trx, result.outbox);
    return result;
  });
}
