/**
 * The invariants every fault test checks once the system has settled, against the
 * scenarios' literal end states, never against the function under test:
 *  1. every instance ends in its expected state (verifyFleet);
 *  2. the audit log holds exactly the outbox's event ids, one row each, all published
 *     and all received downstream;
 *  3. no row regressed: each drifted instance got exactly one committed change (none for
 *     the others), to the expected state; the changes of an instance were committed in
 *     observation order; the row carries the newest committed observation time.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../../shared/db/database.ts';
import { type ChangeEvent, changeEventSchema } from '../../../shared/messages/change-event.ts';
import { UPDATE_RULES, type UpdateRule } from '../../../shared/sync-rules.ts';
import type { FleetPlan } from '../../../tools/fleet/fleet-plan.ts';
import { type Mismatch, verifyFleet } from '../../../tools/fleet/verify-fleet.ts';

export interface InvariantReport {
  mismatches: Mismatch[];
  /** Drifted instances (a drift scenario) not in their expected end state, plus committed changes missing from the audit trail. */
  lost: number;
  /** change_outbox rows. */
  committed: number;
  auditRows: number;
  /** Every broken invariant, one sentence each; empty when all hold. */
  violations: string[];
}

/** The scenario's rule makes a committed change. */
export const isUpdateRule = (rule: string | null): rule is UpdateRule => (UPDATE_RULES as readonly string[]).includes(rule ?? '');

export async function checkInvariants(db: Kysely<Database>, plan: FleetPlan, received: readonly ChangeEvent[]): Promise<InvariantReport> {
  const violations: string[] = [];
  const mismatches = await verifyFleet(db, plan);
  const drifted = new Set(plan.instances.filter((i) => i.scenario.rule !== null).map((i) => i.uuid));
  const lostInstances = mismatches.filter((m) => drifted.has(m.uuid)).length;
  for (const m of mismatches.slice(0, 10)) violations.push(`instance ${m.uuid} (${m.scenario}): expected ${m.expected}, got ${m.actual}`);
  if (mismatches.length > 10) violations.push(`... and ${mismatches.length - 10} more instances not in their expected state`);

  const outbox = await db.selectFrom('change_outbox').select(['seq', 'event_id', 'payload', 'published_at']).orderBy('seq').execute();
  const audit = await db.selectFrom('audit_log').select('event_id').execute();
  const outboxIds = new Set(outbox.map((row) => row.event_id));
  const auditIds = new Set(audit.map((row) => row.event_id));
  if (audit.length !== auditIds.size) violations.push(`audit_log has ${audit.length - auditIds.size} duplicate rows`);
  const notAudited = [...outboxIds].filter((id) => !auditIds.has(id));
  const notCommitted = [...auditIds].filter((id) => !outboxIds.has(id));
  if (notAudited.length > 0) violations.push(`${notAudited.length} committed changes have no audit row (e.g. ${notAudited[0]})`);
  if (notCommitted.length > 0) violations.push(`${notCommitted.length} audit rows match no committed change (e.g. ${notCommitted[0]})`);
  const unpublished = outbox.filter((row) => row.published_at === null).length;
  if (unpublished > 0) violations.push(`${unpublished} outbox rows never marked published`);
  const receivedIds = new Set(received.map((change) => change.eventId));
  const notReceived = [...outboxIds].filter((id) => !receivedIds.has(id));
  if (notReceived.length > 0) violations.push(`${notReceived.length} committed changes never reached a downstream consumer`);
  const strangers = [...receivedIds].filter((id) => !outboxIds.has(id));
  if (strangers.length > 0) violations.push(`${strangers.length} change events received downstream were never committed`);

  const changesOf = new Map<string, ChangeEvent[]>();
  for (const row of outbox) {
    const parsed = changeEventSchema.safeParse(row.payload);
    if (!parsed.success) {
      violations.push(`outbox row ${row.seq} holds an invalid change event`);
      continue;
    }
    if (parsed.data.eventId !== row.event_id) violations.push(`outbox row ${row.seq}: payload eventId differs from event_id`);
    const list = changesOf.get(parsed.data.instanceUuid) ?? [];
    list.push(parsed.data);
    changesOf.set(parsed.data.instanceUuid, list);
  }
  const bookkeeping = await db.selectFrom('instance_sync_state').select(['uuid', 'look_host', 'written_power_state', 'written_vm_state']).execute();
  const bookkeepingOf = new Map(bookkeeping.map((row) => [row.uuid, row]));
  const planned = new Set(plan.instances.map((i) => i.uuid));
  for (const uuid of changesOf.keys()) {
    if (!planned.has(uuid)) violations.push(`a change was committed for ${uuid}, which is not in the fleet`);
  }
  for (const instance of plan.instances) {
    const changes = changesOf.get(instance.uuid) ?? [];
    const { scenario } = instance;
    const expectedCount = isUpdateRule(scenario.rule) ? 1 : 0;
    if (changes.length !== expectedCount) {
      violations.push(`instance ${instance.uuid} (${scenario.name}): ${changes.length} committed changes, expected ${expectedCount}`);
    }
    for (let i = 1; i < changes.length; i++) {
      const [earlier, later] = [changes[i - 1] as ChangeEvent, changes[i] as ChangeEvent];
      if (Date.parse(later.observedAt) <= Date.parse(earlier.observedAt)) {
        violations.push(`instance ${instance.uuid}: a change observed at ${later.observedAt} was committed after one observed at ${earlier.observedAt}`);
      }
    }
    const last = changes.at(-1);
    if (last === undefined) continue;
    if (scenario.expected !== null && (last.after.powerState !== scenario.expected.powerState || last.after.vmState !== scenario.expected.vmState)) {
      violations.push(`instance ${instance.uuid} (${scenario.name}): last change went to ${JSON.stringify(last.after)}, expected ${JSON.stringify(scenario.expected)}`);
    }
    // virtsync's bookkeeping knows its own last write, so a later look can tell it from a cloud write.
    const kept = bookkeepingOf.get(instance.uuid);
    if (kept?.written_power_state !== last.after.powerState || kept.written_vm_state !== last.after.vmState || kept.look_host !== last.host) {
      violations.push(`instance ${instance.uuid}: bookkeeping ${JSON.stringify(kept)} does not record its last committed change ${JSON.stringify(last.after)} by ${last.host}`);
    }
  }
  return { mismatches, lost: lostInstances + notAudited.length, committed: outbox.length, auditRows: audit.length, violations };
}
