/**
 * Queues deployed by an older virtsync carry `x-delivery-limit` and a dead-letter exchange
 * as arguments; today's declaration has neither, which RabbitMQ answers with 406 and a closed
 * channel. The services must keep working on such a queue (and say it should be recreated).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import amqplib, { type Channel, type ChannelModel } from 'amqplib';
import { type BusConnection, connectBus } from '../../../../shared/bus/connect.ts';
import { Exchange, Queue } from '../../../../shared/bus/topology.ts';
import { auditSubscriberEnv, loadConfig } from '../../../../shared/config.ts';
import { createLogger } from '../../../../shared/logging.ts';
import { type RunningService, startService } from '../../../../shared/service-runner.ts';
import { auditSubscriber } from '../../../../services/audit-subscriber/audit-subscriber.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { changeEventFor, routingKeyOf } from '../../../../tools/fixtures/change-events.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';
import { createTestVhost, type TestVhost } from '../../../../tools/local-env/vhost.ts';

const LEGACY_ARGUMENTS = { 'x-queue-type': 'quorum', 'x-delivery-limit': 5, 'x-dead-letter-exchange': Exchange.deadLetter };
const host = `legacy-${randomBytes(3).toString('hex')}`;

let database: TestDatabase;
let vhost: TestVhost;
let raw: ChannelModel;
let channel: Channel;

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  raw = await amqplib.connect(vhost.amqpUrl);
  channel = await raw.createChannel();
  // What the previous version declared.
  await channel.assertExchange(Exchange.changes, 'topic', { durable: true });
  await channel.assertExchange(Exchange.deadLetter, 'fanout', { durable: true });
  for (const queue of [Queue.stateWriter, Queue.auditSubscriber]) await channel.assertQueue(queue, { durable: true, arguments: LEGACY_ARGUMENTS });
  await channel.assertQueue(Queue.hostReports, { durable: true, arguments: { ...LEGACY_ARGUMENTS, 'x-max-length': 100_000, 'x-overflow': 'drop-head' } });
  await channel.bindQueue(Queue.auditSubscriber, Exchange.changes, 'instance.#');
});

after(async () => {
  await raw?.close().catch(() => undefined);
  await vhost?.delete();
  await database?.drop();
});

test('a service starts on queues with legacy arguments, consumes them, and logs that they should be recreated', async () => {
  const lines: string[] = [];
  const log = createLogger({ service: 'test', level: 'warn', destination: { write: (line: string) => lines.push(line) } });
  const bus: BusConnection = connectBus({ url: vhost.amqpUrl, name: 'test legacy', log });
  let service: RunningService | undefined;
  try {
    service = await startService(auditSubscriber, {
      config: loadConfig(auditSubscriberEnv, { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, AUDIT_BATCH_LINGER_MS: '20' }),
      db: database.db,
      bus,
      log,
    });
    const events = Array.from({ length: 5 }, () => changeEventFor(host));
    for (const event of events) channel.publish(Exchange.changes, routingKeyOf(event), Buffer.from(JSON.stringify(event)), { persistent: true });
    await waitFor('the events recorded from the legacy queue', async () => {
      const rows = await database.db.selectFrom('audit_log').select('event_id').where('host', '=', host).execute();
      return rows.length === events.length;
    }, { timeoutMs: 20_000 });

    const legacyWarnings = lines.map((line) => JSON.parse(line) as { msg: string; queue?: string }).filter((entry) => entry.msg.startsWith('queue declared by an older virtsync'));
    assert.deepEqual(new Set(legacyWarnings.map((entry) => entry.queue)), new Set([Queue.stateWriter, Queue.auditSubscriber, Queue.hostReports]));
    // Still the old queue: its arguments were not (and cannot be) changed in place.
    const { messageCount } = await channel.checkQueue(Queue.auditSubscriber);
    assert.equal(messageCount, 0);
  } finally {
    await service?.stop();
    await bus.close();
  }
});
