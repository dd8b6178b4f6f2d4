/**
 * What a batch's decisions write depends on the writer's mode: the cloud's rows and
 * virtsync's bookkeeping (write-ledger.ts), or only the report-only shadow (shadow-ledger.ts).
 * Either way the decisions are the sync rules', and what is to be published goes into the
 * outbox in the same transaction.
 */
import { randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import { type ChangeKind, changeRoutingKey } from '../../shared/bus/topology.ts';
import type { OutboxEvent } from '../../shared/db/change-outbox.ts';
import type { Database } from '../../shared/db/database.ts';
import type { ChangeEvent } from '../../shared/messages/change-event.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import type { Observation } from '../../shared/messages/observation.ts';
import type { ProposedChange } from '../../shared/messages/proposed-change.ts';
import type { Decision, ObservedState } from '../../shared/sync-rules.ts';

export interface LedgerOutput {
  /** Changes committed to instances (write mode). */
  changes: ChangeEvent[];
  /** Changes decided and not written (report-only mode). */
  proposals: ProposedChange[];
  /** Both, as they go into the outbox. */
  outbox: OutboxEvent[];
}

export interface Ledger {
  /** Decides one observation against the row as the batch has left it so far, and records what the decision writes. */
  decide(observation: Observation, observed: ObservedState): Decision;
  /** Writes everything recorded, in the caller's transaction (the outbox is the caller's). */
  write(trx: Transaction<Database>): Promise<LedgerOutput>;
}

type EventBody = Omit<ChangeEvent, 'committedAt'>;

/** What a change was decided on: an observation, or (for the unreachable-host policy) the writer's own finding. */
export type ChangeSource = Pick<Observation, 'instanceUuid' | 'observationId' | 'observedAt'>;

/** The fields a change event and a proposal share. */
export function eventBody(source: ChangeSource, host: string, rule: ChangeEvent['rule'], before: ChangeEvent['before'], after: ChangeEvent['after']): EventBody {
  return {
    schemaVersion: SCHEMA_VERSION,
    eventId: randomUUID(),
    instanceUuid: source.instanceUuid,
    host,
    rule,
    before,
    after,
    observationId: source.observationId,
    observedAt: source.observedAt,
  };
}

const MESSAGE_TYPES: Record<ChangeKind, string> = { instance: 'instance-change', proposed: 'proposed-change' };

export function outboxEventOf(event: EventBody, kind: ChangeKind): OutboxEvent {
  return { eventId: event.eventId, routingKey: changeRoutingKey(event.host, event.after.powerState, kind), messageType: MESSAGE_TYPES[kind], payload: event };
}
