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
import { type Decision, decide, nextSnapshot, type ObservedState, type SyncPolicy, type SyncRule } from '../../shared/sync-rules.ts';

export interface BatchResult {
  changes: ChangeEvent[];
  /** The changes as committed to the outbox, ready to publish. */
  outbox: OutboxEvent[];
  /** How many observations each rule decided. */
  outcomes: Partial<Record<SyncRule, number>>;
  /** Observations whose skip an operator should hear about (moved, migrating in, ...). */
  notable: Array<{ observation: Observation; rule: SyncRule }>;
  /** Observations skipped as stale: the cloud or a newer look got there first. */
  stale: Array<{ observation: Observation; rule: SyncRule }>;
}

const NOTABLE_SKIPS: ReadonlySet<SyncRule> = new Set(['moved', 'migrating-in', 'in-transition', 'deleted', 'stale-host', 'task-in-progress', 'legacy-contract']);

/** An observation as the rules take it, or undefined for an agent that predates look ordering. */
export function observedStateOf(observation: Observation): ObservedState | undefined {
  const { look, expected } = observation;
  if (look === undefined || expected === undefined) return undefined;
  // Agents observe only live rows of their own host.
  return {
    host: observation.host,
    powerState: observation.powerState,
    look,
    expected: { ...expected, host: observation.host, deleted: false },
    ...(observation.reason === undefined ? {} : { reason: observation.reason }),
  };
}

export async function applyObservations(
  db: Kysely<Database>,
  observations: readonly Observation[],
  policy: SyncPolicy,
): Promise<BatchResult> {
  // In look order, so a batch holding two looks of one VM by one host applies them in turn (the sort is stable; looks of other hosts are not compared).
  const ordered = [...observations].sort(byLook);
  return db.transaction().execute(async (trx) => {
    const rows = await lockInstances(trx, [...new Set(ordered.map((o) => o.instanceUuid))]);
    const committedAt = new Date().toISOString();
    const result: BatchResult = { changes: [], outbox: [], outcomes: {}, notable: [], stale: [] };
    const writes = new Map<string, SyncStateWrite>();

    for (const observation of ordered) {
      const row = rows.get(observation.instanceUuid);
      const observed = observedStateOf(observation);
      const decision: Decision = observed === undefined ? { action: 'skip', rule: 'legacy-contract' } : decide(observed, row, policy);
      result.outcomes[decision.rule] = (result.outcomes[decision.rule] ?? 0) + 1;
      if (NOTABLE_SKIPS.has(decision.rule)) result.notable.push({ observation, rule: decision.rule });
      if (STALE_SKIPS.has(decision.rule)) result.stale.push({ observation, rule: decision.rule });
      const next = observed === undefined ? undefined : nextSnapshot(row, decision, observed);
      if (row === undefined || next === undefined) continue;
      rows.set(observation.instanceUuid, next);
      const changesRow = decision.action === 'update' || writes.get(observation.instanceUuid)?.changesRow === true;
      writes.set(observation.instanceUuid, { uuid: observation.instanceUuid, state: next, changesRow, observedAt: observation.observedAt });
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

const STALE_SKIPS: ReadonlySet<SyncRule> = new Set(['changed-after-read', 'stale-observation']);

const NO_LOOK = { epoch: 0, seq: 0 };

/** Orders one host's looks; the epoch dominates (an agent restart never reuses a sequence). */
function byLook(a: Observation, b: Observation): number {
  const [x, y] = [a.look ?? NO_LOOK, b.look ?? NO_LOOK];
  return x.epoch - y.epoch || x.seq - y.seq;
}
