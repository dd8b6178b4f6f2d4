/**
 * A writer with two batch transactions in flight (WRITER_MAX_IN_FLIGHT=2, batches of one
 * message) on real PostgreSQL and RabbitMQ. A row lock held by the test keeps the batch of an
 * instance's first look in flight; the batch of its next look, which shares the instance,
 * must not start beside it (it would queue on the same lock and could commit first), while a
 * batch of another instance commits meanwhile. Once the lock goes, the instance's two looks
 * commit in arrival order: two changes, outbox rows and change events in that order.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Message } from 'amqplib';
import { sql } from 'kysely';
import { changeRoutingKey, Exchange } from '../../../../shared/bus/topology.ts';
import type { NewInstance } from '../../../../shared/db/database.ts';
import { changeEventSchema } from '../../../../shared/messages/change-event.ts';
import { parseMessage } from '../../../../shared/messages/codec.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { VmState } from '../../../../shared/vm-state.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { lookSequence, observationOf, publishObservations } from '../../../helpers/observations.ts';
import { openWriterRig, type WriterRig } from '../../../helpers/writer-rig.ts';

const suffix = randomBytes(3).toString('hex');
const host = `inflight-${suffix}`;
const otherHost = `inflight-other-${suffix}`;
const WAIT = { timeoutMs: 15_000 };

const instance = (on: string): NewInstance => ({ uuid: randomUUID(), host: on, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE });
const shared = instance(host);
const other = instance(otherHost);

let rig: WriterRig;
let changes: Message[];

before(async () => {
  rig = await openWriterRig();
  changes = await rig.probe.collect(Exchange.changes, 'instance.#');
  await rig.database.db.insertInto('instances').values([shared, other]).execute();
});

after(async () => {
  await rig?.close();
});

/** Backends of this database waiting for a lock: the writer's batches stuck behind the test's. */
async function lockWaiters(): Promise<number> {
  const { rows } = await sql<{ waiting: string }>`
    select count(*) as waiting from pg_stat_activity
     where datname = current_database() and wait_event_type = 'Lock'`.execute(rig.database.db);
  return Number(rows[0]?.waiting);
}

async function powerState(uuid: string): Promise<PowerState | undefined> {
  return (await rig.database.db.selectFrom('instances').select('power_state').where('uuid', '=', uuid).executeTakeFirst())?.power_state;
}

test('two batches in flight: one sharing an instance waits for the other, and the instance\'s looks commit in order', async () => {
  await rig.startWriter({ WRITER_MAX_IN_FLIGHT: '2', WRITER_BATCH_SIZE: '1' });
  const nextLook = lookSequence();
  const holder = await rig.database.db.startTransaction().execute();
  let held = true;
  try {
    await sql`select uuid from instances where uuid = ${shared.uuid} for update`.execute(holder);
    publishObservations(rig.probe, [observationOf(shared, PowerState.SHUTOFF, nextLook())]);
    await waitFor('the first batch blocked on the held row lock', async () => (await lockWaiters()) === 1, WAIT);

    // The next look of the same instance (read before the first was committed, as an agent may), then another host's instance.
    publishObservations(rig.probe, [observationOf(shared, PowerState.PAUSED, nextLook())]);
    publishObservations(rig.probe, [observationOf(other, PowerState.SHUTOFF, { epoch: 1, seq: 1 })]);
    await waitFor('the other instance committed beside the blocked batch', async () => (await powerState(other.uuid)) === PowerState.SHUTOFF, WAIT);
    assert.equal(await lockWaiters(), 1, 'the second look of the shared instance was not started beside the first');
    assert.equal(await powerState(shared.uuid), PowerState.RUNNING);

    await holder.commit().execute();
    held = false;
  } finally {
    if (held) await holder.rollback().execute();
  }

  await waitFor('both looks of the shared instance committed', async () => (await powerState(shared.uuid)) === PowerState.PAUSED, WAIT);
  const outbox = await rig.database.db
    .selectFrom('change_outbox')
    .select('routing_key')
    .where('routing_key', 'like', `instance.${host}.%`)
    .orderBy('seq')
    .execute();
  assert.deepEqual(
    outbox.map((row) => row.routing_key),
    [changeRoutingKey(host, PowerState.SHUTOFF), changeRoutingKey(host, PowerState.PAUSED)],
    'two changes, the first look\'s committed first',
  );
  const kept = await rig.database.db.selectFrom('instance_sync_state').select(['look_epoch', 'look_seq']).where('uuid', '=', shared.uuid).executeTakeFirst();
  assert.deepEqual(kept && { epoch: Number(kept.look_epoch), seq: Number(kept.look_seq) }, { epoch: 1, seq: 2 });

  await waitFor('the three change events published', () => changes.length === 3, WAIT);
  const events = changes.flatMap((message) => {
    const parsed = parseMessage(changeEventSchema, message.content);
    return parsed.ok && parsed.value.instanceUuid === shared.uuid ? [parsed.value.after.powerState] : [];
  });
  assert.deepEqual(events, [PowerState.SHUTOFF, PowerState.PAUSED], 'the shared instance\'s events published in commit order');
});
