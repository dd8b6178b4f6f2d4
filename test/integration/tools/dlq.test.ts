/**
 * `virtsync dlq list|replay` as an operator runs it, on a dead-letter queue filled the real
 * ways: the broker dead-lettering from a queue with a legacy delivery limit, a virtsync
 * consumer rejecting a write that failed on its data and a message that is invalid, and a
 * message published into the dead-letter exchange by hand.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import amqplib, { type Channel, type ChannelModel } from 'amqplib';
import { startBatchConsumer } from '../../../shared/bus/batch-consumer.ts';
import { startDeadLetterWatch } from '../../../shared/bus/dead-letter-watch.ts';
import { type BusConnection, connectBus } from '../../../shared/bus/connect.ts';
import { createPublisher, type Publisher } from '../../../shared/bus/publisher.ts';
import { declareCoreTopology, Exchange, observationRoutingKey, Queue } from '../../../shared/bus/topology.ts';
import { createLogger } from '../../../shared/logging.ts';
import { changeEventSchema } from '../../../shared/messages/change-event.ts';
import { deadLetterQueueMessages } from '../../../shared/metrics.ts';
import { type HostObservations } from '../../../shared/messages/observation.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { changeEventFor, routingKeyOf } from '../../../tools/fixtures/change-events.ts';
import { runCli } from '../../helpers/cli-process.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

const host = `dlq-${randomBytes(3).toString('hex')}`;
let vhost: TestVhost;
let raw: ChannelModel;
let channel: Channel;
let env: Record<string, string>;
const ids = { broker: '', virtsyncValid: '', virtsyncInvalid: '', byHand: '' };

async function json<T>(args: string[]): Promise<T> {
  const result = await runCli(args, env);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as T;
}

before(async () => {
  vhost = await createTestVhost();
  env = { AMQP_URL: vhost.amqpUrl };
  raw = await amqplib.connect(vhost.amqpUrl);
  channel = await raw.createChannel();
  // 1. The broker: a writer queue as an older virtsync declared it, with a delivery limit of 1.
  await channel.assertExchange(Exchange.deadLetter, 'fanout', { durable: true });
  await channel.assertQueue(Queue.deadLetter, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await channel.bindQueue(Queue.deadLetter, Exchange.deadLetter, '');
  await channel.assertExchange(Exchange.observations, 'topic', { durable: true });
  await channel.assertQueue(Queue.stateWriter, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 1, 'x-dead-letter-exchange': Exchange.deadLetter } });
  await channel.bindQueue(Queue.stateWriter, Exchange.observations, 'observation.#');
  const observations: HostObservations = {
    schemaVersion: 1,
    host,
    observedAt: new Date().toISOString(),
    trigger: 'tick',
    tickId: null,
    observations: [{ observationId: randomUUID(), instanceUuid: randomUUID(), powerState: PowerState.SHUTOFF }],
  };
  ids.broker = randomUUID();
  channel.publish(Exchange.observations, observationRoutingKey(host), Buffer.from(JSON.stringify(observations)), { persistent: true, messageId: ids.broker, type: 'host-observations' });
  for (let delivery = 0; delivery < 2; delivery++) {
    let message: Awaited<ReturnType<Channel['get']>> = false;
    await waitFor('the observation delivered', async () => (message = await channel.get(Queue.stateWriter)) !== false, { timeoutMs: 10_000 });
    if (message !== false) channel.nack(message, false, true);
  }
  await waitFor('the broker to dead-letter it', async () => (await channel.checkQueue(Queue.deadLetter)).messageCount === 1, { timeoutMs: 10_000 });

  // 2. virtsync: the audit queue's consumer rejects one event whose write fails on its data, and one invalid event.
  await channel.assertExchange(Exchange.changes, 'topic', { durable: true });
  // Declared as today's virtsync does, before publishing (the consumer's own declaration runs on connect, later).
  await channel.assertQueue(Queue.auditSubscriber, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await channel.bindQueue(Queue.auditSubscriber, Exchange.changes, 'instance.#');
  const bus: BusConnection = connectBus({ url: vhost.amqpUrl, name: 'test dlq', log: testLogger });
  const publisher: Publisher = createPublisher(bus, { name: 'test dlq', log: testLogger, setup: declareCoreTopology });
  const consumer = await startBatchConsumer(bus, {
    name: 'test dlq',
    log: testLogger,
    queue: Queue.auditSubscriber,
    schema: changeEventSchema,
    batchSize: 10,
    lingerMs: 20,
    publisher,
    write: async () => {
      throw Object.assign(new Error('new row violates check constraint'), { code: '23514' });
    },
  });
  const valid = changeEventFor(host);
  ids.virtsyncValid = valid.eventId;
  ids.virtsyncInvalid = randomUUID();
  channel.publish(Exchange.changes, routingKeyOf(valid), Buffer.from(JSON.stringify(valid)), { persistent: true, messageId: valid.eventId, type: 'instance-change' });
  channel.publish(Exchange.changes, routingKeyOf(valid), Buffer.from(JSON.stringify({ ...valid, host: 'not a host!' })), { persistent: true, messageId: ids.virtsyncInvalid });
  await waitFor('virtsync to dead-letter both', async () => (await channel.checkQueue(Queue.deadLetter)).messageCount === 3, { timeoutMs: 10_000 });
  await consumer.stop();
  await publisher.close();
  await bus.close();

  // 3. By hand: a valid event straight into the dead-letter exchange.
  ids.byHand = randomUUID();
  channel.publish(Exchange.deadLetter, 'anything', Buffer.from(JSON.stringify(changeEventFor(host, { eventId: ids.byHand }))), { persistent: true, messageId: ids.byHand });
  await waitFor('four dead letters', async () => (await channel.checkQueue(Queue.deadLetter)).messageCount === 4, { timeoutMs: 10_000 });
});

after(async () => {
  await raw?.close().catch(() => undefined);
  await vhost?.delete();
});

type Listed = { messageId: string; deadLetteredBy: string; queue: string | null; reason: string; replayable: boolean; notReplayableBecause?: string };

test('dlq list says who dead-lettered each message, from where, why, and whether it can be replayed', async () => {
  const listed = new Map((await json<Listed[]>(['dlq', 'list', '--json'])).map((entry) => [entry.messageId, entry]));
  assert.deepEqual(
    [ids.broker, ids.virtsyncValid, ids.virtsyncInvalid, ids.byHand].map((id) => {
      const entry = listed.get(id);
      return [entry?.deadLetteredBy, entry?.queue, entry?.replayable];
    }),
    [
      ['broker', Queue.stateWriter, true],
      ['virtsync', Queue.auditSubscriber, true],
      ['virtsync', Queue.auditSubscriber, false],
      ['unknown', null, false],
    ],
  );
  assert.equal(listed.get(ids.broker)?.reason, 'delivery_limit');
  assert.match(listed.get(ids.virtsyncValid)?.reason ?? '', /write failed: new row violates check constraint/);
  assert.match(listed.get(ids.virtsyncInvalid)?.notReplayableBecause ?? '', /still invalid: host/);
  assert.equal((await channel.checkQueue(Queue.deadLetter)).messageCount, 4, 'listing takes nothing away');
});

test('dlq replay --dry-run changes nothing; a message put there by hand is refused', async () => {
  const dry = await runCli(['dlq', 'replay', '--all', '--dry-run'], env);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /2 of 4 would be replayed/);
  const byHand = await runCli(['dlq', 'replay', ids.byHand], env);
  assert.equal(byHand.code, 1);
  assert.match(byHand.stderr, /not dead-lettered by the broker or virtsync/);
  assert.equal((await channel.checkQueue(Queue.deadLetter)).messageCount, 4);
});

test('dlq replay --all republishes the two valid dead letters to the exchanges they came through, and only those', async () => {
  await channel.purgeQueue(Queue.auditSubscriber);
  const result = await runCli(['dlq', 'replay', '--all'], env);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /2 of 4 replayed/);

  const observation = await channel.get(Queue.stateWriter);
  const change = await channel.get(Queue.auditSubscriber);
  assert.equal(observation !== false && observation.properties.messageId, ids.broker);
  assert.equal(change !== false && change.properties.messageId, ids.virtsyncValid);
  assert.equal(change !== false && change.properties.headers?.['x-virtsync-reason'], undefined, 'the dead-letter headers are dropped');
  const left = await json<Listed[]>(['dlq', 'list', '--json']);
  assert.deepEqual(new Set(left.map((entry) => entry.messageId)), new Set([ids.virtsyncInvalid, ids.byHand]));
});

test('the dead-letter watch exports the queue depth the broker reports and logs when it grows', async () => {
  const lines: string[] = [];
  const log = createLogger({ service: 'test', level: 'warn', destination: { write: (line: string) => lines.push(line) } });
  const bus = connectBus({ url: vhost.amqpUrl, name: 'test dlq watch', log: testLogger });
  const watched = createPublisher(bus, { name: 'test dlq watch', log: testLogger, setup: declareCoreTopology });
  await watched.waitForConnect();
  const watch = startDeadLetterWatch({ channel: watched, log, intervalMs: 60_000 });
  try {
    const depth = (await channel.checkQueue(Queue.deadLetter)).messageCount;
    assert.ok(depth > 0);
    assert.equal(await watch.check(), depth);
    assert.match((await deadLetterQueueMessages.get()).values.map((v) => `virtsync_dead_letter_queue_messages ${v.value}`).join('\n'), new RegExp(`virtsync_dead_letter_queue_messages ${depth}\\b`));
    channel.publish(Exchange.deadLetter, '', Buffer.from('{}'), { persistent: true });
    await waitFor('the new dead letter seen', async () => (await watch.check()) === depth + 1, { timeoutMs: 10_000 });
    const warnings = lines.map((line) => JSON.parse(line) as { msg: string; messages?: number; added?: number });
    assert.deepEqual(
      warnings.filter((entry) => entry.msg.startsWith('messages waiting in the dead-letter queue')).map((entry) => [entry.messages, entry.added]),
      [[depth, depth], [depth + 1, 1]],
    );
  } finally {
    watch.stop();
    await watched.close();
    await bus.close();
  }
});
