/**
 * BUS_TOPOLOGY=verify: a service declares nothing. On a vhost where `virtsync bus setup` has
 * not run it waits (not started, so not ready), and starts as soon as the topology exists;
 * and it never created any of it itself.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import amqplib from 'amqplib';
import { auditSubscriber } from '../../../../services/audit-subscriber/audit-subscriber.ts';
import { type BusConnection, connectBus } from '../../../../shared/bus/connect.ts';
import { declareCoreTopology, Queue } from '../../../../shared/bus/topology.ts';
import { auditSubscriberEnv, loadConfig } from '../../../../shared/config.ts';
import { type RunningService, startService } from '../../../../shared/service-runner.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';
import { testLogger } from '../../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../../tools/local-env/vhost.ts';

let database: TestDatabase;
let vhost: TestVhost;
let bus: BusConnection;
let service: RunningService | undefined;

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  bus = connectBus({ url: vhost.amqpUrl, name: 'test topology gate', log: testLogger });
});

after(async () => {
  await service?.stop();
  await bus?.close();
  await vhost?.delete();
  await database?.drop();
});

async function queueExists(name: string): Promise<boolean> {
  const connection = await amqplib.connect(vhost.amqpUrl);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return await channel.checkQueue(name).then(
      () => true,
      () => false,
    );
  } finally {
    await connection.close().catch(() => undefined);
  }
}

test('a service with BUS_TOPOLOGY=verify waits for `bus setup`, then starts', async () => {
  const config = loadConfig(auditSubscriberEnv, { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, BUS_TOPOLOGY: 'verify' });
  let started = false;
  const starting = startService(auditSubscriber, { config, db: database.db, bus, log: testLogger }).then((running) => {
    started = true;
    service = running;
  });
  await waitFor('the broker connection', () => bus.isConnected(), { timeoutMs: 15_000 });
  // Two of the gate's 2 s rounds: still waiting, and nothing was declared on its behalf.
  await new Promise((resolve) => setTimeout(resolve, 4_500));
  assert.equal(started, false, 'not started before the topology exists');
  assert.equal(await queueExists(Queue.auditSubscriber), false, 'the service declared nothing');

  // What `virtsync bus setup` does, with the operator's (here: guest's) identity.
  const operator = await amqplib.connect(vhost.amqpUrl);
  await declareCoreTopology(await operator.createChannel());
  await operator.close();
  await starting;
  assert.equal(started, true);
  // Then ready: every readiness check holds (a check is `true` or `{ ok: true }`; the database probe runs every 5 s).
  const ready = (value: unknown): boolean => value === true || (typeof value === 'object' && value !== null && 'ok' in value && value.ok === true);
  await waitFor('every readiness check to hold', () => Object.values(service?.checks() ?? { none: false }).every(ready), { timeoutMs: 20_000, intervalMs: 200 });
});
