/**
 * Lifecycle events' observations have a queue of their own (issue 14): on real PostgreSQL and
 * RabbitMQ, an event's observation published behind a tick backlog is committed before that
 * backlog, and a rolling upgrade (agents publishing events under the old key and the new one,
 * a writer of the previous release beside a new one, `bus setup` run after old agents already
 * published) loses nothing, dead-letters nothing and hands no message to two queues.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startBatchConsumer } from '../../../shared/bus/batch-consumer.ts';
import { connectBus } from '../../../shared/bus/connect.ts';
import { createPublisher } from '../../../shared/bus/publisher.ts';
import { declareCoreTopology, eventObservationRoutingKey, Exchange, observationRoutingKey, Queue } from '../../../shared/bus/topology.ts';
import type { NewInstance } from '../../../shared/db/database.ts';
import { groupObservations, hostObservationsSchema, type Observation, observationsOf } from '../../../shared/messages/observation.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { SEED_POLICY } from '../../../shared/sync-rules.ts';
import { VmState } from '../../../shared/vm-state.ts';
import { applyObservations } from '../../../services/state-writer/apply-observations.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { lookSequence, observationOf } from '../../helpers/observations.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { openWriterRig, type WriterRig } from '../../helpers/writer-rig.ts';

const suffix = randomBytes(3).toString('hex');
const WAIT = { timeoutMs: 20_000, intervalMs: 50 };

let rig: WriterRig;

before(async () => {
  rig = await openWriterRig();
});

after(async () => {
  await rig?.close();
});

function rowsOf(host: string, count: number): NewInstance[] {
  return Array.from({ length: count }, () => ({ uuid: randomUUID(), host, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE }));
}

/** Publishes observations as agents group them, under `routingKey`; returns how many messages. */
function publish(observations: readonly Observation[], routingKey: (host: string) => string): number {
  const messages = groupObservations(observations);
  for (const message of messages) rig.probe.publish(Exchange.observations, routingKey(message.host), message);
  return messages.length;
}

async function powerStates(uuids: readonly string[]): Promise<Map<string, number>> {
  const rows = await rig.database.db.selectFrom('instances').select(['uuid', 'power_state']).where('uuid', 'in', uuids).execute();
  return new Map(rows.map((row) => [row.uuid, row.power_state]));
}

describe('event observations have a queue of their own', () => {
  test('an event observation published behind a tick backlog is committed before the backlog', async () => {
    // 30 hosts' syncs of 250 drifted instances each: about 15 writer transactions of 500 with the default batch size.
    const hosts = Array.from({ length: 30 }, (_, i) => `backlog-${suffix}-${i}`);
    const backlogRows = hosts.flatMap((host) => rowsOf(host, 250));
    const [eventRow] = rowsOf(`events-${suffix}`, 1);
    assert.ok(eventRow !== undefined);
    await rig.database.db.insertInto('instances').values([...backlogRows, eventRow]).execute();
    const look = lookSequence(41);
    // One look per host sync, as agents make them: one message per host.
    const ticks = hosts.flatMap((host) => {
      const hostLook = look();
      return backlogRows.filter((row) => row.host === host).map((row) => observationOf(row, PowerState.SHUTOFF, hostLook));
    });
    const event = observationOf(eventRow, PowerState.PAUSED, look(), { trigger: 'event' });

    // The writer takes the whole backlog in (its prefetch holds it) and starts on it; then the event comes.
    // Two transactions of the backlog in flight; the event has a slot of its own beside them.
    const inFlight = 2;
    await rig.startWriter({ WRITER_BATCH_LINGER_MS: '10', WRITER_MAX_IN_FLIGHT: String(inFlight) });
    publish(ticks, observationRoutingKey);
    const outboxRows = async (): Promise<number> => Number((await rig.database.db.selectFrom('change_outbox').select((eb) => eb.fn.countAll().as('rows')).executeTakeFirstOrThrow()).rows);
    await waitFor('the first backlog batch committed', async () => (await outboxRows()) > 0, { timeoutMs: 20_000, intervalMs: 5 });
    const committedBefore = await outboxRows();
    publish([event], eventObservationRoutingKey);

    await waitFor('the backlog committed', async () => [...(await powerStates(backlogRows.map((row) => row.uuid))).values()].every((state) => state === PowerState.SHUTOFF), WAIT);
    await waitFor('the event committed', async () => (await powerStates([eventRow.uuid])).get(eventRow.uuid) === PowerState.PAUSED, WAIT);
    const outbox = await rig.database.db.selectFrom('change_outbox').select(['seq', 'payload']).orderBy('seq').execute();
    const position = outbox.findIndex((row) => JSON.stringify(row.payload).includes(eventRow.uuid));
    assert.equal(outbox.length, backlogRows.length + 1);
    // Behind what was committed when it was published, at most the batches in flight then (500 changes each, their outbox
    // rows may take seqs before the event's) and as many cut into their slots before the event reached the writer; far from
    // the backlog's end.
    const bound = committedBefore + 2 * inFlight * 500;
    assert.ok(position >= 0 && position <= bound, `the event's change committed at position ${position} (${committedBefore} committed when it was published, bound ${bound})`);
    assert.ok(position < outbox.length - 1_000, `the event's change committed at position ${position} of ${outbox.length}`);
  });

  test('rolling upgrade: old and new agents, an old writer beside a new one, bus setup after old agents published: nothing lost, nothing twice', async () => {
    // The topology as an older release declared it: the writer's queue only.
    await rig.stopWriter();
    const channel = await rig.probe.ready();
    await channel.deleteQueue(Queue.stateWriterEvents);
    const oldHost = `old-agent-${suffix}`;
    const newHost = `new-agent-${suffix}`;
    const oldRows = rowsOf(oldHost, 20);
    const newRows = rowsOf(newHost, 20);
    await rig.database.db.insertInto('instances').values([...oldRows, ...newRows]).execute();
    const oldLook = lookSequence(51);
    const newLook = lookSequence(52);
    // Each instance: a tick look (SHUTOFF), then a newer event look (PAUSED). Old agents send both under observation.<host>.
    const oldTicks = oldRows.map((row) => observationOf(row, PowerState.SHUTOFF, oldLook()));
    const oldEvents = oldRows.map((row) => observationOf(row, PowerState.PAUSED, oldLook(), { trigger: 'event' }));
    const newTicks = newRows.map((row) => observationOf(row, PowerState.SHUTOFF, newLook()));
    const newEvents = newRows.map((row) => observationOf(row, PowerState.PAUSED, newLook(), { trigger: 'event' }));

    // Old agents publish first (their events under the tick key); then `bus setup` of this release runs again (idempotent).
    const oldMessages = publish(oldTicks, observationRoutingKey) + oldEvents.reduce((total, observation) => total + publish([observation], observationRoutingKey), 0);
    await declareCoreTopology(channel);
    // New agents: events (the newer looks) first, under the new key, then the older tick looks: the newer must win whichever queue delivers first.
    const newEventMessages = newEvents.reduce((total, observation) => total + publish([observation], eventObservationRoutingKey), 0);
    const newTickMessages = publish(newTicks, observationRoutingKey);
    // Every message sits in exactly one queue: the two bindings never both take one.
    await waitFor(
      'each message routed to one queue',
      async () => (await rig.probe.messageCount(Queue.stateWriter)) === oldMessages + newTickMessages && (await rig.probe.messageCount(Queue.stateWriterEvents)) === newEventMessages,
      WAIT,
    );

    // A writer of the previous release consumes virtsync.state-writer only; the new one both queues.
    const oldWriterBus = connectBus({ url: rig.vhost.amqpUrl, name: 'test previous-release writer', log: testLogger });
    const oldWriter = await startBatchConsumer(oldWriterBus, {
      name: 'previous-release writer',
      log: testLogger,
      publisher: createPublisher(oldWriterBus, { name: 'previous-release writer.publish', log: testLogger, setup: declareCoreTopology }),
      queue: Queue.stateWriter,
      schema: hostObservationsSchema,
      batchSize: 7,
      lingerMs: 5,
      write: (messages) => applyObservations(rig.database.db, messages.flatMap(observationsOf), SEED_POLICY),
    });
    try {
      await rig.startWriter({ WRITER_BATCH_SIZE: '7' });
      const uuids = [...oldRows, ...newRows].map((row) => row.uuid);
      await waitFor('every instance at its newest look', async () => [...(await powerStates(uuids)).values()].every((state) => state === PowerState.PAUSED), WAIT);
      await waitFor('both queues empty', async () => (await rig.probe.messageCount(Queue.stateWriter)) + (await rig.probe.messageCount(Queue.stateWriterEvents)) === 0, WAIT);
      assert.equal(await rig.probe.messageCount(Queue.deadLetter), 0, 'nothing dead-lettered');
      const states = await rig.database.db.selectFrom('instance_sync_state').select(['uuid', 'look_epoch', 'look_seq']).where('uuid', 'in', uuids).execute();
      assert.equal(states.length, uuids.length);
      // The newest look of each instance is the one decided last: its event look.
      const eventLooks = new Map([...oldEvents, ...newEvents].map((o) => [o.instanceUuid, o.look]));
      for (const state of states) assert.deepEqual({ epoch: Number(state.look_epoch), seq: Number(state.look_seq) }, eventLooks.get(state.uuid));
    } finally {
      await oldWriter.stop();
      await oldWriterBus.close();
    }
  });
});
