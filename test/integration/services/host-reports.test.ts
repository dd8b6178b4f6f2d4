/**
 * The newest sync report of each host is kept queryable: the audit subscriber records
 * reports from virtsync.reports. Reports are ordered by the agent's look order, never by its
 * clock (`startedAt`): a late report of an older look never replaces a newer one; a report
 * without a look (an older agent, or a sync that failed before the hypervisor answered)
 * replaces the stored one by arrival.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { type BusConnection, connectBus } from '../../../shared/bus/connect.ts';
import { Exchange, reportRoutingKey } from '../../../shared/bus/topology.ts';
import { auditSubscriberEnv, loadConfig } from '../../../shared/config.ts';
import type { HostReport } from '../../../shared/messages/host-report.ts';
import { type RunningService, startService } from '../../../shared/service-runner.ts';
import { auditSubscriber } from '../../../services/audit-subscriber/audit-subscriber.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let bus: BusConnection;
let subscriber: RunningService;

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  bus = connectBus({ url: vhost.amqpUrl, name: 'test audit', log: testLogger });
  const config = loadConfig(auditSubscriberEnv, { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, AUDIT_BATCH_LINGER_MS: '10' });
  subscriber = await startService(auditSubscriber, { config, db: database.db, bus, log: testLogger });
});

after(async () => {
  await subscriber?.stop();
  await bus?.close();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
});

function report(host: string, startedAt: string, overrides: Partial<HostReport> = {}): HostReport {
  return {
    schemaVersion: 1,
    host,
    tickId: randomUUID(),
    cycle: 7,
    trigger: 'periodic',
    startedAt,
    durationMs: 12,
    outcome: 'synced',
    error: null,
    dbCount: 10,
    hypervisorCount: 10,
    compared: 10,
    drifted: 1,
    missing: 0,
    unknown: 0,
    published: 1,
    ...overrides,
  };
}

let sentinels = 0;

/**
 * Publishes a report of a host of its own and waits for it to be recorded: one subscriber
 * consumes the queue in order, so every report published before it has been recorded (or
 * left out) by then.
 */
async function recordedSoFar(): Promise<void> {
  const host = `sentinel-${++sentinels}`;
  probe.publish(Exchange.reports, reportRoutingKey(host), report(host, new Date().toISOString()));
  await waitFor(`${host} recorded`, async () => (await stored(host)) !== undefined, { timeoutMs: 30_000 });
}

async function stored(host: string) {
  const row = await database.db
    .selectFrom('host_sync_reports')
    .select(['outcome', 'error', 'started_at', 'look_epoch', 'look_seq', 'report'])
    .where('host', '=', host)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  const { report: body, ...rest } = row;
  return { ...rest, drifted: (body as HostReport).drifted, look: (body as HostReport).look };
}

function publishReport(value: HostReport): void {
  probe.publish(Exchange.reports, reportRoutingKey(value.host), value);
}

test('the newest look per host is kept; an older look arriving late does not replace it, whatever its stamp', async () => {
  publishReport(report('h1', '2026-11-24T20:00:00.000Z', { look: { epoch: 4, seq: 10 } }));
  publishReport(report('h2', '2026-11-24T20:00:00.000Z', { outcome: 'skipped', error: 'libvirt h2: circuit open', look: { epoch: 1, seq: 3 } }));
  await waitFor('two hosts recorded', async () => (await stored('h1')) !== undefined && (await stored('h2')) !== undefined, { timeoutMs: 30_000 });

  // A newer look whose agent clock runs an hour behind: it replaces the stored report.
  publishReport(report('h1', '2026-11-24T19:00:00.000Z', { drifted: 3, published: 3, look: { epoch: 4, seq: 11 } }));
  await waitFor('h1 replaced by the newer look', async () => (await stored('h1'))?.look_seq === '11', { timeoutMs: 30_000 });

  // An older look stamped far ahead (year 3000), then the same look again: neither replaces it.
  publishReport(report('h1', '3000-01-01T00:00:00.000Z', { drifted: 99, look: { epoch: 4, seq: 9 } }));
  publishReport(report('h1', '3000-01-01T00:00:00.000Z', { drifted: 98, look: { epoch: 4, seq: 11 } }));
  await recordedSoFar();
  assert.deepEqual(await stored('h1'), {
    outcome: 'synced',
    error: null,
    started_at: new Date('2026-11-24T19:00:00.000Z'),
    look_epoch: '4',
    look_seq: '11',
    drifted: 3,
    look: { epoch: 4, seq: 11 },
  });
  assert.deepEqual([(await stored('h2'))?.outcome, (await stored('h2'))?.error], ['skipped', 'libvirt h2: circuit open']);

  // A restarted agent's first look (higher epoch, sequence from 1) is newer.
  publishReport(report('h1', '2026-11-24T18:00:00.000Z', { drifted: 5, look: { epoch: 5, seq: 1 } }));
  await waitFor('h1 replaced by the restarted agent\'s look', async () => (await stored('h1'))?.look_epoch === '5', { timeoutMs: 30_000 });
  assert.equal((await stored('h1'))?.drifted, 5);
});

test('reports of one host out of look order in quick succession (one batch or several): the newest look is kept', async () => {
  for (const seq of [3, 7, 5, 1, 6]) publishReport(report('h3', '2026-11-24T20:00:00.000Z', { drifted: seq, look: { epoch: 2, seq } }));
  await recordedSoFar();
  assert.deepEqual([(await stored('h3'))?.look_seq, (await stored('h3'))?.drifted], ['7', 7]);
});

test('a report without a look replaces the stored one by arrival, and a look after it replaces it again', async () => {
  publishReport(report('h4', '2026-11-24T20:00:00.000Z', { look: { epoch: 3, seq: 50 } }));
  await waitFor('h4 recorded', async () => (await stored('h4')) !== undefined, { timeoutMs: 30_000 });

  // Failed before the hypervisor answered (no look), stamped earlier: received last, it wins.
  publishReport(report('h4', '2026-11-24T19:00:00.000Z', { outcome: 'failed', error: 'libvirt h4: connection refused', drifted: 0 }));
  await waitFor('h4 replaced by the report without a look', async () => (await stored('h4'))?.outcome === 'failed', { timeoutMs: 30_000 });
  assert.deepEqual([(await stored('h4'))?.look_epoch, (await stored('h4'))?.look_seq, (await stored('h4'))?.look], [null, null, undefined]);

  // Two more without a look: the one received last is kept, not the one with the later stamp.
  publishReport(report('h4', '2026-11-24T21:00:00.000Z', { outcome: 'skipped', error: 'first' }));
  publishReport(report('h4', '2026-11-24T20:30:00.000Z', { outcome: 'skipped', error: 'second' }));
  await recordedSoFar();
  assert.equal((await stored('h4'))?.error, 'second');

  // Any look after a report without one replaces it (there is nothing to order it against).
  publishReport(report('h4', '2026-11-24T18:00:00.000Z', { look: { epoch: 3, seq: 2 } }));
  await waitFor('h4 replaced by a report with a look', async () => (await stored('h4'))?.look_seq === '2', { timeoutMs: 30_000 });
  assert.equal((await stored('h4'))?.outcome, 'synced');
  await subscriber.stop();
});
