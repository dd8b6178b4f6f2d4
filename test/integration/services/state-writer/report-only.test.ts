/**
 * Report-only writer mode on real PostgreSQL and RabbitMQ (WRITER_MODE=report-only,
 * MISSING_GRACE_CYCLES=2): a drift is proposed once on `proposed.<host>.<state>` and
 * never reaches `instance.#` (nor the audit subscriber's queue), the cloud's table and
 * virtsync's write-mode bookkeeping stay untouched, misses count up in the shadow, a cloud
 * change voids the shadow entry; then a writer started in write mode drops the shadow and
 * decides on the real table. The tests run in order on one database.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Message } from 'amqplib';
import { Exchange, Queue } from '../../../../shared/bus/topology.ts';
import type { WriterMode } from '../../../../shared/config.ts';
import type { NewInstance } from '../../../../shared/db/database.ts';
import { readHostInstances } from '../../../../shared/db/instances.ts';
import { changeEventSchema } from '../../../../shared/messages/change-event.ts';
import { parseMessage } from '../../../../shared/messages/codec.ts';
import type { Observation } from '../../../../shared/messages/observation.ts';
import { type ProposedChange, proposedChangeSchema } from '../../../../shared/messages/proposed-change.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { VmState } from '../../../../shared/vm-state.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import type { BusProbe } from '../../../helpers/bus-probe.ts';
import { lookSequence, observationOf, publishObservations, type RowAsRead } from '../../../helpers/observations.ts';
import type { TestDatabase } from '../../../helpers/test-database.ts';
import { openWriterRig, type WriterRig } from '../../../helpers/writer-rig.ts';

const host = `shadow-${randomBytes(3).toString('hex')}`;
const WAIT = { timeoutMs: 15_000 };
const nextLook = lookSequence(1);

const drifted: NewInstance = { uuid: randomUUID(), host, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE };
const missing: NewInstance = { uuid: randomUUID(), host, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE };

let rig: WriterRig;
let database: TestDatabase;
let probe: BusProbe;
let proposed: Message[];
let committed: Message[];

before(async () => {
  rig = await openWriterRig();
  ({ database, probe } = rig);
  proposed = await probe.collect(Exchange.changes, 'proposed.#');
  committed = await probe.collect(Exchange.changes, 'instance.#');
  await database.db.insertInto('instances').values([drifted, missing]).execute();
  await startWriter('report-only');
});

after(async () => {
  await rig?.close();
});

async function startWriter(mode: WriterMode): Promise<void> {
  await rig.startWriter({ WRITER_MODE: mode, MISSING_GRACE_CYCLES: '2' });
}

async function readRow(uuid: string) {
  return database.db.selectFrom('instances').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
}

async function readShadow(uuid: string) {
  return database.db.selectFrom('instance_sync_shadow').selectAll().where('uuid', '=', uuid).executeTakeFirst();
}

/** A look at the row as an agent makes it: what it reads now, then what the hypervisor says. */
async function observe(row: NewInstance, powerState: PowerState | null): Promise<Observation> {
  const asRead: RowAsRead = await readRow(row.uuid);
  const observation = observationOf(asRead, powerState, nextLook());
  publishObservations(probe, [observation]);
  return observation;
}

/**
 * Observes a fresh drifted instance and waits for the writer to record its look: with one
 * writer consuming in order, everything published before has been decided by then.
 */
async function decidedSoFar(): Promise<void> {
  const sentinel: NewInstance = { uuid: randomUUID(), host, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE };
  await database.db.insertInto('instances').values(sentinel).execute();
  await observe(sentinel, PowerState.PAUSED);
  await waitFor('the sentinel decided', async () => (await readShadow(sentinel.uuid)) !== undefined || (await readRow(sentinel.uuid)).power_state === PowerState.PAUSED, WAIT);
}

function proposalsFor(uuid: string): Array<{ routingKey: string; type: unknown; proposal: ProposedChange }> {
  return proposed.flatMap((message) => {
    const parsed = parseMessage(proposedChangeSchema, message.content);
    assert.ok(parsed.ok, `a proposal on the exchange: ${parsed.ok ? '' : parsed.reason}`);
    return parsed.value.instanceUuid === uuid ? [{ routingKey: message.fields.routingKey, type: message.properties.type, proposal: parsed.value }] : [];
  });
}

async function untouched(row: NewInstance, updatedAt: Date): Promise<void> {
  const now = await readRow(row.uuid);
  assert.deepEqual([now.power_state, now.vm_state, now.updated_at], [row.power_state, row.vm_state, updatedAt], 'the cloud\'s row is as it was');
  const bookkeeping = await database.db.selectFrom('instance_sync_state').select('uuid').where('uuid', '=', row.uuid).executeTakeFirst();
  assert.equal(bookkeeping, undefined, 'write mode\'s bookkeeping is not touched');
}

test('a drift is proposed once on proposed.<host>.<state>, nothing is written to instances, the shadow records it', async () => {
  const { updated_at: updatedAt } = await readRow(drifted.uuid);
  const first = await observe(drifted, PowerState.SHUTOFF);
  await waitFor('the proposal', () => proposalsFor(drifted.uuid).length === 1, WAIT);
  const [delivered] = proposalsFor(drifted.uuid);
  assert.ok(delivered);
  const { routingKey, type, proposal } = delivered;
  assert.equal(routingKey, `proposed.${host}.shutoff`);
  assert.equal(type, 'proposed-change');
  assert.deepEqual(
    { rule: proposal.rule, before: proposal.before, after: proposal.after, observationId: proposal.observationId },
    {
      rule: 'stopped',
      before: { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE },
      after: { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF },
      observationId: first.observationId,
    },
  );
  await untouched(drifted, updatedAt);
  const shadow = await readShadow(drifted.uuid);
  assert.deepEqual(
    [shadow?.base_power_state, shadow?.base_vm_state, shadow?.shadow_power_state, shadow?.shadow_vm_state],
    [PowerState.RUNNING, VmState.ACTIVE, PowerState.SHUTOFF, VmState.SHUTOFF],
  );

  // The same drift next cycle, and the first look redelivered: nothing more to propose.
  await observe(drifted, PowerState.SHUTOFF);
  publishObservations(probe, [first]);
  await decidedSoFar();
  assert.equal(proposalsFor(drifted.uuid).length, 1, 'proposed once');
  await untouched(drifted, updatedAt);
  const [row] = (await readHostInstances(database.db, host)).filter((instance) => instance.uuid === drifted.uuid);
  assert.equal(row?.shadowed, true, 'agents keep reporting the row, so the writer hears when it agrees with the real row again');
});

test('the missing rule\'s grace counts up in the shadow; the last miss is proposed as NOSTATE', async () => {
  const { updated_at: updatedAt } = await readRow(missing.uuid);
  await observe(missing, null);
  await waitFor('the first miss counted in the shadow', async () => (await readShadow(missing.uuid))?.missed_reports === 1, WAIT);
  assert.equal(proposalsFor(missing.uuid).length, 0, 'within the grace: nothing proposed');
  await observe(missing, null);
  await waitFor('the NOSTATE proposal', () => proposalsFor(missing.uuid).length === 1, WAIT);
  assert.deepEqual(proposalsFor(missing.uuid)[0]?.proposal.after, { powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE });
  assert.equal((await readShadow(missing.uuid))?.missed_reports, 2);
  await untouched(missing, updatedAt);
});

test('nothing reached instance.# or the audit subscriber\'s queue', async () => {
  await decidedSoFar();
  assert.equal(committed.length, 0);
  assert.equal(await probe.messageCount(Queue.auditSubscriber), 0);
});

test('the cloud changing the row voids its shadow entry: the real row decides again', async () => {
  await database.db.updateTable('instances').set({ power_state: PowerState.PAUSED }).where('uuid', '=', drifted.uuid).execute();
  const [row] = (await readHostInstances(database.db, host)).filter((instance) => instance.uuid === drifted.uuid);
  assert.equal(row?.shadowed, false, 'the entry no longer applies');

  await observe(drifted, PowerState.SHUTOFF);
  await waitFor('a proposal from the row as the cloud left it', () => proposalsFor(drifted.uuid).length === 2, WAIT);
  assert.deepEqual(proposalsFor(drifted.uuid)[1]?.proposal.before, { powerState: PowerState.PAUSED, vmState: VmState.ACTIVE });
});

test('a writer started in write mode drops the shadow and starts from the real table', async () => {
  await startWriter('write');
  assert.equal((await database.db.selectFrom('instance_sync_shadow').select('uuid').execute()).length, 0, 'the shadow is dropped');

  await observe(drifted, PowerState.SHUTOFF);
  // The shadow counted two misses; the real table none: one miss is within the grace.
  await observe(missing, null);
  await waitFor('the drift written', async () => (await readRow(drifted.uuid)).power_state === PowerState.SHUTOFF, WAIT);
  await decidedSoFar();
  assert.equal((await readRow(drifted.uuid)).vm_state, VmState.SHUTOFF);
  const changesOfDrifted = () =>
    committed.flatMap((message) => {
      const change = parseMessage(changeEventSchema, message.content);
      return change.ok && change.value.instanceUuid === drifted.uuid ? [change.value] : [];
    });
  await waitFor('its change event', () => changesOfDrifted().length === 1, WAIT);
  assert.deepEqual(changesOfDrifted()[0]?.before, { powerState: PowerState.PAUSED, vmState: VmState.ACTIVE }, 'from the row as the cloud left it');
  assert.equal((await readRow(missing.uuid)).power_state, PowerState.RUNNING, 'one miss of the real table\'s count: not NOSTATE yet');
  const bookkeeping = await database.db.selectFrom('instance_sync_state').select('missed_reports').where('uuid', '=', missing.uuid).executeTakeFirstOrThrow();
  assert.equal(bookkeeping.missed_reports, 1);
});
