/**
 * The newest sync report of each host is kept queryable: the audit subscriber records
 * reports from virtsync.reports, and a late, older report never replaces a newer one.
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
import { createTestVhost, type TestVhost } from '../../helpers/test-vhost.ts';

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

test('the newest report per host is kept; an older one arriving late does not replace it', async () => {
  probe.publish(Exchange.reports, reportRoutingKey('h1'), report('h1', '2026-11-24T20:00:00.000Z'));
  probe.publish(Exchange.reports, reportRoutingKey('h2'), report('h2', '2026-11-24T20:00:00.000Z', { outcome: 'skipped', error: 'libvirt h2: circuit open' }));
  await waitFor('two hosts recorded', async () => (await database.db.selectFrom('host_sync_reports').select('host').execute()).length === 2, { timeoutMs: 10_000 });

  probe.publish(Exchange.reports, reportRoutingKey('h1'), report('h1', '2026-11-24T20:10:00.000Z', { drifted: 3, published: 3 }));
  await waitFor('h1 updated', async () => {
    const row = await database.db.selectFrom('host_sync_reports').select('started_at').where('host', '=', 'h1').executeTakeFirstOrThrow();
    return row.started_at.toISOString() === '2026-11-24T20:10:00.000Z';
  }, { timeoutMs: 10_000 });

  probe.publish(Exchange.reports, reportRoutingKey('h1'), report('h1', '2026-11-24T19:50:00.000Z', { drifted: 99 }));
  // The older report is consumed (acked) without replacing the newer one.
  await waitFor('the late report consumed', async () => (await probe.messageCount('virtsync.host-reports')) === 0, { timeoutMs: 10_000 });
  await subscriber.stop();

  const rows = await database.db.selectFrom('host_sync_reports').select(['host', 'outcome', 'error', 'started_at', 'report']).orderBy('host').execute();
  assert.equal(rows[0]?.started_at.toISOString(), '2026-11-24T20:10:00.000Z');
  assert.equal((rows[0]?.report as HostReport).drifted, 3);
  assert.deepEqual([rows[1]?.outcome, rows[1]?.error], ['skipped', 'libvirt h2: circuit open']);
});
