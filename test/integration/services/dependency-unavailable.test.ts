/**
 * Issue 13 §1: a valid message never ends in the dead-letter queue because its consumer's
 * database is unavailable or misconfigured, however often the consumer restarts meanwhile.
 * Real audit subscriber (in process), real PostgreSQL roles and grants, real RabbitMQ queues
 * as virtsync declares them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { type BusConnection, connectBus } from '../../../shared/bus/connect.ts';
import { Exchange, Queue } from '../../../shared/bus/topology.ts';
import { auditSubscriberEnv, loadConfig } from '../../../shared/config.ts';
import { createDatabase } from '../../../shared/db/connect.ts';
import type { Database } from '../../../shared/db/database.ts';
import { startDatabaseProbe } from '../../../shared/db/readiness-probe.ts';
import type { ReadinessCheck } from '../../../shared/http-server.ts';
import { type RunningService, startService } from '../../../shared/service-runner.ts';
import { auditSubscriber } from '../../../services/audit-subscriber/audit-subscriber.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { changeEventFor, routingKeyOf } from '../../../tools/fixtures/change-events.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

const suffix = randomBytes(3).toString('hex');
const host = `unavailable-${suffix}`;
const login = `vs_test_unavail_${suffix}`;
const WAIT = { timeoutMs: 20_000 };

let database: TestDatabase;
let admin: pg.Client;
let loginDb: Kysely<Database>;
let vhost: TestVhost;
let probe: BusProbe;

before(async () => {
  database = await createTestDatabase();
  admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  // A login with no privileges yet: what a deployment with a forgotten GRANT looks like.
  await admin.query(`create role ${login} login`);
  const url = new URL(database.url);
  url.username = login;
  loginDb = createDatabase({ url: url.toString(), log: testLogger });
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
});

after(async () => {
  await loginDb?.destroy();
  await probe?.close();
  await vhost?.delete();
  await admin?.end();
  await database?.drop();
  // Roles are cluster-wide: drop it from another database.
  const cleanup = new pg.Client({ connectionString: database.url.replace(/\/[^/]+$/, '/postgres') });
  await cleanup.connect();
  await cleanup.query(`drop role if exists ${login}`);
  await cleanup.end();
});

async function startSubscriber(db: Kysely<Database>): Promise<{ service: RunningService; bus: BusConnection }> {
  const bus = connectBus({ url: vhost.amqpUrl, name: 'test audit-subscriber', log: testLogger });
  const service = await startService(auditSubscriber, {
    config: loadConfig(auditSubscriberEnv, { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, AUDIT_BATCH_LINGER_MS: '20' }),
    db,
    bus,
    log: testLogger,
  });
  return { service, bus };
}

async function stopSubscriber(running: { service: RunningService; bus: BusConnection }): Promise<void> {
  await running.service.stop();
  await running.bus.close();
}

function publishEvents(count: number): string[] {
  const events = Array.from({ length: count }, () => changeEventFor(host));
  for (const event of events) probe.publish(Exchange.changes, routingKeyOf(event), event);
  return events.map((event) => event.eventId);
}

async function auditedIds(): Promise<Set<string>> {
  const rows = await database.db.selectFrom('audit_log').select('event_id').where('host', '=', host).execute();
  return new Set(rows.map((row) => row.event_id));
}

function reasonOf(check: ReadinessCheck | undefined): string {
  return typeof check === 'object' ? (check.reason ?? '') : '';
}

test('an audit subscriber whose role lacks privileges keeps the events (not dead-lettered) and records them once granted', async () => {
  const running = await startSubscriber(loginDb);
  try {
    const ids = publishEvents(20);
    await waitFor('the subscriber to report the missing privilege', () => reasonOf(running.service.checks?.().writes).includes('permission denied'), WAIT);
    assert.equal(await probe.messageCount(Queue.deadLetter), 0, 'nothing dead-lettered');
    assert.equal((await auditedIds()).size, 0);

    await admin.query(`grant virtsync_audit to ${login}`);
    await waitFor('every event recorded after the grant', async () => (await auditedIds()).size === ids.length, WAIT);
    assert.deepEqual(await auditedIds(), new Set(ids));
    assert.deepEqual(running.service.checks?.().writes, { ok: true });
    assert.equal(await probe.messageCount(Queue.deadLetter), 0, 'nothing dead-lettered');
  } finally {
    await stopSubscriber(running);
  }
});

test('an audit subscriber restarted 10 times while its database is down loses nothing', async () => {
  // Nothing listens on port 1: every connect is refused, as with PostgreSQL stopped.
  const down = createDatabase({ url: 'postgres://postgres@127.0.0.1:1/virtsync', log: testLogger });
  const ids = publishEvents(30);
  try {
    for (let restart = 1; restart <= 10; restart++) {
      const running = await startSubscriber(down);
      await waitFor(`restart ${restart}: the subscriber retrying against the dead database`, () => reasonOf(running.service.checks?.().writes).includes('unreachable'), WAIT);
      // Half of them go down with their connection instead of a graceful stop (RabbitMQ 3.10 counts both toward a delivery limit).
      if (restart % 2 === 0) await vhost.closeConnections();
      await stopSubscriber(running);
    }
  } finally {
    await down.destroy();
  }
  // Closing the vhost's connections closed the probe's too.
  await probe.close();
  probe = await openBusProbe(vhost.amqpUrl);
  assert.equal(await probe.messageCount(Queue.deadLetter), 0, 'nothing dead-lettered after 10 restarts');

  const running = await startSubscriber(database.db);
  try {
    await waitFor('every event recorded once the database is back', async () => (await auditedIds()).size >= ids.length + 20, WAIT);
    const audited = await auditedIds();
    for (const id of ids) assert.ok(audited.has(id), `event ${id} recorded`);
    assert.equal(await probe.messageCount(Queue.deadLetter), 0);
  } finally {
    await stopSubscriber(running);
  }
});

test('/readyz\'s database probe runs a real query: ready on a live database, the reason on a dead one or a refused login', async () => {
  const dead = createDatabase({ url: 'postgres://postgres@127.0.0.1:1/virtsync', log: testLogger });
  const refusedUrl = new URL(database.url);
  refusedUrl.pathname = `/virtsync_missing_${suffix}`;
  const missing = createDatabase({ url: refusedUrl.toString(), log: testLogger });
  const probes = [database.db, dead, missing].map((db) => startDatabaseProbe(db, { intervalMs: 100, timeoutMs: 2_000 }));
  try {
    const [live, down, unknown] = probes;
    await waitFor('every probe answered', () => probes.every((probe) => reasonOf(probe.health()) !== 'not checked yet'), WAIT);
    assert.deepEqual(live?.health(), { ok: true });
    assert.match(reasonOf(down?.health()), /unreachable/);
    assert.match(reasonOf(unknown?.health()), /database does not exist \(3D000\)/);
  } finally {
    for (const probe of probes) probe.stop();
    await dead.destroy();
    await missing.destroy();
  }
});
