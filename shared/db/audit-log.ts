/**
 * The audit trail: one row per committed change event, mapped to and from the change's
 * camelCase shape here and nowhere else.
 */
import type { ChangeEvent } from '../messages/change-event.ts';
import type { PowerState } from '../power-state.ts';
import { RULE_REASONS } from '../sync-rules.ts';
import type { VmState } from '../vm-state.ts';
import type { AuditLogTable, Db } from './database.ts';
import type { Insertable, Selectable } from 'kysely';

/** One recorded change, as `virtsync history` shows it. */
export interface AuditRecord {
  eventId: string;
  instanceUuid: string;
  host: string;
  rule: string;
  reason: string;
  before: { powerState: PowerState; vmState: VmState };
  after: { powerState: PowerState; vmState: VmState };
  observationId: string;
  observedAt: Date;
  committedAt: Date;
  recordedAt: Date;
}

/** Appends change events; an event already recorded (redelivery) is skipped. Returns how many were new. */
export async function appendAuditEntries(db: Db, events: readonly ChangeEvent[]): Promise<number> {
  if (events.length === 0) return 0;
  const inserted = await db
    .insertInto('audit_log')
    .values(events.map(toAuditRow))
    .onConflict((oc) => oc.column('event_id').doNothing())
    .returning('event_id')
    .execute();
  return inserted.length;
}

/** Every recorded change of `instanceUuid`, oldest first (audit_log_instance_idx serves it). */
export async function readInstanceHistory(db: Db, instanceUuid: string): Promise<AuditRecord[]> {
  const rows = await db
    .selectFrom('audit_log')
    .selectAll()
    .where('instance_uuid', '=', instanceUuid)
    .orderBy('committed_at')
    .orderBy('observed_at')
    .orderBy('recorded_at')
    .execute();
  return rows.map(fromAuditRow);
}

function toAuditRow(event: ChangeEvent): Insertable<AuditLogTable> {
  return {
    event_id: event.eventId,
    instance_uuid: event.instanceUuid,
    host: event.host,
    rule: event.rule,
    reason: RULE_REASONS[event.rule],
    before_power_state: event.before.powerState,
    after_power_state: event.after.powerState,
    before_vm_state: event.before.vmState,
    after_vm_state: event.after.vmState,
    observation_id: event.observationId,
    observed_at: event.observedAt,
    committed_at: event.committedAt,
  };
}

function fromAuditRow(row: Selectable<AuditLogTable>): AuditRecord {
  return {
    eventId: row.event_id,
    instanceUuid: row.instance_uuid,
    host: row.host,
    rule: row.rule,
    reason: row.reason,
    before: { powerState: row.before_power_state, vmState: row.before_vm_state },
    after: { powerState: row.after_power_state, vmState: row.after_vm_state },
    observationId: row.observation_id,
    observedAt: row.observed_at,
    committedAt: row.committed_at,
    recordedAt: row.recorded_at,
  };
}
