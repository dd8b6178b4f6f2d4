/**
 * The shared consume-write-ack loop on a real queue: a message that can never be written
 * is isolated and dead-lettered with the error, its batch-mates are written; stop()
 * returns promptly while the database is down, leaving the batch requeued; with two writes in
 * flight, one retrying leaves the other to be written and acked.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { type BatchConsumer, startBatchConsumer } from '../../../../shared/bus/batch-consumer.ts';
import { type BusConnection, connectBus } from '../../../../shared/bus/connect.ts';
import { createPublisher, type Publisher } from '../../../../shared/bus/publisher.ts';
import { declareCoreTopology, Queue, REASON_HEADER } from '../../../../shared/bus/topology.ts';
import { DependencyError } from '../../../../shared/errors.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../../helpers/bus-probe.ts';
import { testLogger } from '../../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../../tools/local-env/vhost.ts';

const messageSchema = z.object({ schemaVersion: z.literal(1), n: z.number() });
let vhost: TestVhost;
let bus: BusConnection;
let publisher: Publisher;
let probe: BusProbe;

before(async () => {
  vhost = await createTestVhost();
  bus = connectBus({ url: vhost.amqpUrl, name: 'test', log: testLogger });
  publisher = createPublisher(bus, { name: 'test', log: testLogger, setup: declareCoreTopology });
  probe = await openBusProbe(vhost.amqpUrl);
});

after(async () => {
  await publisher?.close();
  await bus?.close();
  await probe?.close();
  await vhost?.delete();
});

function consume(
  write: (messages: Array<{ n: number }>) => Promise<void>,
  concurrency: { batchSize?: number; maxInFlight?: number; keysOf?: (message: { n: number }) => string[] } = {},
): Promise<BatchConsumer> {
  return startBatchConsumer(bus, {
    name: 'test',
    log: testLogger,
    queue: Queue.auditSubscriber,
    schema: messageSchema,
    batchSize: 10,
    lingerMs: 50,
    publisher,
    write,
    ...concurrency,
  });
}

test('a poison message is dead-lettered with the error; its batch-mates are written', async () => {
  const written: number[] = [];
  const consumer = await consume(async (messages) => {
    // As pg reports a data exception (class 22): the message's own data is at fault.
    if (messages.some((m) => m.n === 13)) throw Object.assign(new Error('value out of range for the database'), { code: '22003' });
    written.push(...messages.map((m) => m.n));
  });
  for (const n of [1, 13, 2]) probe.channel.sendToQueue(Queue.auditSubscriber, Buffer.from(JSON.stringify({ schemaVersion: 1, n })));
  const [dead] = await probe.drain(Queue.deadLetter, 1);
  await waitFor('the good messages written', () => written.length === 2, { timeoutMs: 10_000 });
  await consumer.stop();

  assert.deepEqual(written.sort(), [1, 2]);
  assert.deepEqual(JSON.parse(dead!.content.toString()), { schemaVersion: 1, n: 13 });
  assert.equal(dead!.properties.headers?.[REASON_HEADER], 'write failed: value out of range for the database');
  assert.equal(await probe.messageCount(Queue.auditSubscriber), 0);
});

test('stop() returns promptly while every write fails transiently, and the batch is requeued', async () => {
  let attempts = 0;
  const consumer = await consume(async () => {
    attempts++;
    throw new DependencyError('database', 'connection refused');
  });
  probe.channel.sendToQueue(Queue.auditSubscriber, Buffer.from(JSON.stringify({ schemaVersion: 1, n: 7 })));
  await waitFor('a retry', () => attempts >= 2, { timeoutMs: 10_000 });

  const started = Date.now();
  await consumer.stop();
  assert.ok(Date.now() - started < 2_000, `stop took ${Date.now() - started} ms`);
  await waitFor('the message back in its queue', async () => (await probe.messageCount(Queue.auditSubscriber)) === 1, { timeoutMs: 10_000 });
});

test('two writes in flight: one failing transiently does not hold the other back, keeps the consumer unhealthy, each is acked or requeued on its own', async () => {
  await probe.channel.purgeQueue(Queue.auditSubscriber);
  const written: number[] = [];
  let attempts = 0;
  const consumer = await consume(
    async (messages) => {
      if (messages.some((m) => m.n === 1)) {
        attempts++;
        throw new DependencyError('database', 'connection refused');
      }
      written.push(...messages.map((m) => m.n));
    },
    { batchSize: 1, maxInFlight: 2, keysOf: (message) => [String(message.n)] },
  );
  for (const n of [1, 2, 3]) probe.channel.sendToQueue(Queue.auditSubscriber, Buffer.from(JSON.stringify({ schemaVersion: 1, n })));
  await waitFor('2 and 3 written beside the write of 1 retrying', () => written.length === 2 && attempts >= 2, { timeoutMs: 10_000 });
  assert.equal(consumer.health().ok, false, 'unhealthy while a write is retried, even though others went through');
  await consumer.stop();

  assert.deepEqual(written.sort(), [2, 3]);
  // Acked one by one: only the failed write's message is back in the queue, for another consumer.
  const [requeued] = await probe.drain(Queue.auditSubscriber, 1);
  assert.deepEqual(JSON.parse(requeued!.content.toString()), { schemaVersion: 1, n: 1 });
  assert.equal(await probe.messageCount(Queue.auditSubscriber), 0);
  assert.equal(await probe.messageCount(Queue.deadLetter), 0);
});

/** Shaped like pg's errors: an Error with the SQLSTATE in `code`. */
function sqlError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const NOT_THE_MESSAGES_FAULT = [
  { what: 'authentication failed (28P01)', err: sqlError('28P01', 'password authentication failed for user "writer"'), reason: 'authentication failed' },
  { what: 'missing privilege (42501)', err: sqlError('42501', 'permission denied for table audit_log'), reason: 'permission denied' },
  { what: 'read-only server after a failover (25006)', err: sqlError('25006', 'cannot execute INSERT in a read-only transaction'), reason: 'read-only' },
  { what: 'table missing during a migration (42P01)', err: sqlError('42P01', 'relation "audit_log" does not exist'), reason: 'migrations' },
  { what: 'unknown database (3D000)', err: sqlError('3D000', 'database "virtsync" does not exist'), reason: 'does not exist' },
  { what: 'a bug (a plain Error)', err: new Error('cannot read properties of undefined'), reason: 'cannot read properties' },
];

for (const { what, err, reason } of NOT_THE_MESSAGES_FAULT) {
  test(`${what}: the batch is kept and retried, health says why, nothing is dead-lettered`, async () => {
    await probe.channel.purgeQueue(Queue.auditSubscriber);
    const written: number[] = [];
    const reasons: string[] = [];
    let consumer: BatchConsumer | undefined;
    consumer = await consume(async (messages) => {
      if (reasons.length < 3) {
        const health = consumer?.health();
        reasons.push(health?.reason ?? '');
        throw err;
      }
      written.push(...messages.map((m) => m.n));
    });
    for (const n of [1, 2, 3]) probe.channel.sendToQueue(Queue.auditSubscriber, Buffer.from(JSON.stringify({ schemaVersion: 1, n })));
    await waitFor('the batch written once the failure passed', () => written.length === 3, { timeoutMs: 15_000 });
    await consumer.stop();

    assert.ok(reasons.slice(1).every((seen) => seen.includes(reason)), `health reasons while failing: ${reasons.join(' | ')}`);
    assert.deepEqual(consumer.health(), { ok: true });
    assert.deepEqual(written.sort(), [1, 2, 3]);
    assert.equal(await probe.messageCount(Queue.deadLetter), 0);
    assert.equal(await probe.messageCount(Queue.auditSubscriber), 0);
  });
}
