/**
 * The audit subscriber in-process on real PostgreSQL and RabbitMQ: change events
 * published as raw bytes on the changes exchange, results read back from audit_log and
 * the dead-letter queue.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { connectBus, type BusConnection } from '../../../shared/bus/connect.ts';
import { Exchange, Queue, REASON_HEADER } from '../../../shared/bus/topology.ts';
import { auditSubscriberEnv, loadConfig } from '../../../shared/config.ts';
import type { ChangeEvent } from '../../../shared/messages/change-event.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { type RunningService, startService } from '../../../shared/service-runner.ts';
import { VmState } from '../../../shared/vm-state.ts';
import { auditSubscriber } from '../../../services/audit-subscriber/audit-subscriber.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';
import { changeEventFor } from '../../../tools/fixtures/change-events.ts';

const suffix = randomBytes(3).toString('hex');
/** Dotted on purpose: a topic routing key carries it as one word, dots as `_`. */
const host = `audit-${suffix}.test`;
const hostWord = host.replaceAll('.', '_');
const WAIT = { timeoutMs: 15_000 };

let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let bus: BusConnection;
let subscriber: RunningService | undefined;

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  bus = connectBus({ url: vhost.amqpUrl, name: 'test audit-subscriber', log: testLogger });
  subscriber = await startService(auditSubscriber, {
    config: loadConfig(auditSubscriberEnv, { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, AUDIT_BATCH_LINGER_MS: '20' }),
    db: database.db,
    bus,
    log: testLogger,
  });
});

after(async () => {
  await subscriber?.stop();
  await subscriber?.stop();
  await bus?.close();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
});

function changeEvent(overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  return changeEventFor(host, overrides);
}

const STATE_WORDS: Record<PowerState, string> = {
  0: 'nostate', 1: 'running', 2: 'blocked', 3: 'paused', 4: 'shutdown', 5: 'shutoff', 6: 'crashed', 7: 'suspended', 8: 'failed', 9: 'building',
};

function publish(event: ChangeEvent): void {
  probe.publish(Exchange.changes, `instance.${hostWord}.${STATE_WORDS[event.after.powerState]}`, event);
}

async function auditRows(eventIds: readonly string[]) {
  return database.db.selectFrom('audit_log').selectAll().where('event_id', 'in', [...eventIds]).orderBy('event_id').execute();
}

/**
 * Publishes one more event and waits for its row. One consumer writes its batches one
 * after another in delivery order, so everything published before it is settled by then.
 */
async function settle(): Promise<void> {
  const sentinel = changeEvent();
  publish(sentinel);
  await waitFor('the sentinel event to be recorded', async () => (await auditRows([sentinel.eventId])).length === 1, WAIT);
}

test('each change event lands as one audit_log row with before/after states, rule, reason and timestamps', async () => {
  const startedAt = new Date();
  const events = [
    changeEvent(),
    changeEvent({
      rule: 'running',
      before: { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF },
      after: { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE },
      // Offsets other than Z are instants like any other.
      observedAt: '2025-03-04T05:06:07.123+02:00',
      committedAt: '2025-03-04T05:06:08.456+02:00',
    }),
    changeEvent({ rule: 'power-only', after: { powerState: PowerState.PAUSED, vmState: VmState.ACTIVE } }),
    // PostgreSQL prints uuids lower-case; the contract lower-cases them on the way in.
    changeEvent({ rule: 'missing', instanceUuid: randomUUID().toUpperCase(), after: { powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE } }),
    changeEvent({ rule: 'host-unreachable', after: { powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE } }),
  ];
  for (const event of events) publish(event);
  const ids = events.map((event) => event.eventId);
  await waitFor('an audit row each', async () => (await auditRows(ids)).length === events.length, WAIT);

  const rows = new Map((await auditRows(ids)).map((row) => [row.event_id, row]));
  const reasons = {
    stopped: 'the hypervisor reports the instance stopped while the cloud had it active',
    running: 'the hypervisor reports the instance running',
    'power-only': 'the hypervisor reports another power state',
    missing: 'the hypervisor does not know the instance',
    'host-unreachable': 'its host has been unreachable longer than the operator allows; its state is unknown',
  };
  for (const event of events) {
    const row = rows.get(event.eventId);
    assert.ok(row !== undefined, `a row for ${event.rule}`);
    assert.ok(row.recorded_at instanceof Date && row.recorded_at.getTime() >= startedAt.getTime() - 1_000);
    assert.deepEqual(row, {
      event_id: event.eventId,
      instance_uuid: event.instanceUuid.toLowerCase(),
      host,
      rule: event.rule,
      reason: reasons[event.rule],
      before_power_state: event.before.powerState,
      after_power_state: event.after.powerState,
      before_vm_state: event.before.vmState,
      after_vm_state: event.after.vmState,
      observation_id: event.observationId,
      observed_at: new Date(event.observedAt),
      committed_at: new Date(event.committedAt),
      recorded_at: row.recorded_at,
    });
  }
  assert.deepEqual(rows.get(events[1]!.eventId)?.observed_at, new Date('2025-03-04T03:06:07.123Z'));
});

test('the same event published twice is recorded once, whether the copies share a batch or not', async () => {
  const together = changeEvent();
  const apart = changeEvent({ rule: 'power-only', after: { powerState: PowerState.SUSPENDED, vmState: VmState.ACTIVE } });
  publish(together);
  publish(together);
  publish(apart);
  await waitFor('the first copy of the second event', async () => (await auditRows([apart.eventId])).length === 1, WAIT);
  const [first] = await auditRows([apart.eventId]);
  // Redelivered later, with a different body: the first record stands.
  publish({ ...apart, rule: 'missing', after: { powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE } });
  await settle();

  assert.equal((await auditRows([together.eventId])).length, 1);
  assert.deepEqual(await auditRows([apart.eventId]), [first]);
  assert.equal(await probe.messageCount(Queue.auditSubscriber), 0);
  assert.equal(await probe.messageCount(Queue.deadLetter), 0, 'a duplicate is not an invalid message');
});

test('an invalid event goes to the dead-letter queue with the reason, and the subscriber goes on', async () => {
  const valid = changeEvent();
  const { after: _after, ...withoutAfter } = changeEvent();
  const bad: Record<string, Buffer> = {
    'not-json': Buffer.from('instance changed'),
    'wrong-schema-version': Buffer.from(JSON.stringify({ ...changeEvent(), schemaVersion: 2 })),
    'skip-rule': Buffer.from(JSON.stringify({ ...changeEvent(), rule: 'equal' })),
    'missing-after': Buffer.from(JSON.stringify(withoutAfter)),
    'bad-power-state': Buffer.from(JSON.stringify({ ...changeEvent(), after: { powerState: 10, vmState: VmState.ACTIVE } })),
    'bad-event-id': Buffer.from(JSON.stringify({ ...changeEvent(), eventId: 'event-1' })),
  };
  const routingKey = `instance.${hostWord}.shutoff`;
  for (const [name, body] of Object.entries(bad)) probe.publish(Exchange.changes, routingKey, body, { 'x-test-case': name });
  publish(valid);
  await waitFor('the valid event published after the bad ones', async () => (await auditRows([valid.eventId])).length === 1, WAIT);

  const dead = await probe.drain(Queue.deadLetter, Object.keys(bad).length, WAIT.timeoutMs);
  assert.equal(dead.length, Object.keys(bad).length);
  const byCase = new Map(dead.map((message) => [String(message.properties.headers?.['x-test-case']), message]));
  const reason = (name: string): string => String(byCase.get(name)?.properties.headers?.[REASON_HEADER]);
  assert.match(reason('not-json'), /^not JSON: /);
  assert.equal(reason('wrong-schema-version'), 'unsupported schemaVersion 2 (expected 1)');
  assert.match(reason('skip-rule'), /^rule: /);
  assert.match(reason('missing-after'), /^after: /);
  assert.match(reason('bad-power-state'), /^after\.powerState: /);
  assert.match(reason('bad-event-id'), /^eventId: /);
  for (const [name, body] of Object.entries(bad)) {
    const message = byCase.get(name);
    assert.ok(message !== undefined, `${name} dead-lettered`);
    assert.deepEqual(message.content, body, `${name}: the original bytes`);
    assert.equal(message.properties.headers?.['x-virtsync-queue'], Queue.auditSubscriber);
    assert.equal(message.properties.headers?.['x-virtsync-routing-key'], routingKey);
  }
  const recorded = await database.db.selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow();
  // 5 + 2 + the sentinel + the valid one: nothing from the bad messages.
  assert.equal(Number(recorded.count), 9);
  assert.equal(await probe.messageCount(Queue.auditSubscriber), 0);
});

test('stop() is safe to call twice', async () => {
  assert.ok(subscriber !== undefined);
  await Promise.all([subscriber.stop(), subscriber.stop()]);
  await subscriber.stop();
  const queue = await probe.channel.checkQueue(Queue.auditSubscriber);
  assert.equal(queue.consumerCount, 0);
  assert.equal(queue.messageCount, 0);
});
