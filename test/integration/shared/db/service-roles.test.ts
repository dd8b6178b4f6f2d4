/**
 * Least privilege, checked by connecting as each service's role: agents only read
 * their own host's instances (row-level security), only the writer updates them, the audit subscriber only appends to its trail.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { createDatabase } from '../../../../shared/db/connect.ts';
import type { Database } from '../../../../shared/db/database.ts';
import { recordReportReceipts } from '../../../../shared/db/host-report-receipts.ts';
import {
  forgetDisabledHosts,
  insertLiveness,
  insertTransitions,
  listHostLiveness,
  listPipelineHealth,
  listUnpublishedTransitions,
  markTransitionsPublished,
  readLivenessInputs,
  recordPipelineHealth,
  updateLiveness,
} from '../../../../shared/db/host-liveness.ts';
import { SCHEMA_VERSION } from '../../../../shared/messages/fields.ts';
import { testLogger } from '../../../helpers/test-logger.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';

const SERVICE_ROLES = ['virtsync_tick_producer', 'virtsync_agent', 'virtsync_writer', 'virtsync_audit', 'virtsync_reader'] as const;
type ServiceRole = (typeof SERVICE_ROLES)[number];

let database: TestDatabase;
const logins = new Map<ServiceRole, { user: string; url: string; client: pg.Client }>();
const uuid = randomUUID();
const otherHostsUuid = randomUUID();

before(async () => {
  database = await createTestDatabase();
  await database.db.insertInto('compute_hosts').values({ host: 'h1' }).execute();
  await database.db.insertInto('compute_hosts').values({ host: 'h2' }).execute();
  await database.db.insertInto('instances').values({ uuid, host: 'h1', power_state: 1, vm_state: 'active' }).execute();
  await database.db.insertInto('instances').values({ uuid: otherHostsUuid, host: 'h2', power_state: 1, vm_state: 'active' }).execute();
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  for (const role of SERVICE_ROLES) {
    const user = `vs_test_${role.slice('virtsync_'.length)}_${randomBytes(3).toString('hex')}`;
    await admin.query(`create role ${user} login in role ${role}`);
    const url = new URL(database.url);
    url.username = user;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    logins.set(role, { user, url: url.toString(), client });
  }
  // The agent's login is h1's (what `virtsync hosts add h1` records).
  await database.db.insertInto('agent_logins').values({ login: (logins.get('virtsync_agent') as { user: string }).user, host: 'h1' }).execute();
  await admin.end();
});

after(async () => {
  const users = [...logins.values()];
  for (const { client } of users) await client.end();
  await database?.drop();
  if (users.length === 0) return;
  const admin = new pg.Client({ connectionString: database.url.replace(/\/[^/]+$/, '/postgres') });
  await admin.connect();
  for (const { user } of users) await admin.query(`drop role if exists ${user}`);
  await admin.end();
});

/** A kysely pool logged in as the role, closed after the test. */
function kyselyAs(role: ServiceRole, t: { after: (fn: () => Promise<void>) => void }): Kysely<Database> {
  const db = createDatabase({ url: (logins.get(role) as { url: string }).url, log: testLogger, maxConnections: 1 });
  t.after(() => db.destroy());
  return db;
}

function as(role: ServiceRole): pg.Client {
  return (logins.get(role) as { client: pg.Client }).client;
}

async function denied(role: ServiceRole, statement: string, params: unknown[] = []): Promise<void> {
  await assert.rejects(as(role).query(statement, params), (err: unknown) => (err as { code?: string }).code === '42501', `${role}: ${statement}`);
}

const updateInstance = 'update instances set power_state = 5 where uuid = $1';
const insertAudit = `insert into audit_log (event_id, instance_uuid, host, rule, reason, before_power_state, after_power_state,
  before_vm_state, after_vm_state, observation_id, observed_at, committed_at)
  values ($1, $2, 'h1', 'stopped', 'r', 1, 5, 'active', 'shutoff', $1, now(), now())`;

describe('service roles', () => {
  test("the agent reads its own host's instances only and can change nothing", async () => {
    assert.equal((await as('virtsync_agent').query('select uuid from instances where host = $1', ['h1'])).rowCount, 1);
    assert.deepEqual((await as('virtsync_agent').query('select uuid from instances')).rows, [{ uuid }]);
    assert.equal((await as('virtsync_agent').query('select uuid from instances where host = $1', ['h2'])).rowCount, 0);
    await denied('virtsync_agent', 'select * from agent_logins');
    await denied('virtsync_agent', updateInstance, [uuid]);
    await denied('virtsync_agent', insertAudit, [randomUUID(), uuid]);
    await denied('virtsync_agent', "insert into change_outbox (event_id, routing_key, payload) values (gen_random_uuid(), 'k', '{}')");
    await denied('virtsync_agent', `delete from instance_sync_shadow`);
  });

  test("report-only mode's shadow: the writer keeps it, an agent reads its own host's entries only", async () => {
    const entry = `insert into instance_sync_shadow (uuid, base_host, base_power_state, base_vm_state, base_deleted, shadow_power_state, shadow_vm_state)
      values ($1, 'h1', 1, 'active', false, 5, 'shutoff')`;
    await as('virtsync_writer').query(entry, [uuid]);
    await as('virtsync_writer').query(entry.replace("'h1'", "'h2'"), [otherHostsUuid]);
    assert.deepEqual((await as('virtsync_agent').query('select uuid from instance_sync_shadow')).rows, [{ uuid }]);
    assert.equal((await as('virtsync_reader').query('select uuid from instance_sync_shadow')).rowCount, 2);
    await denied('virtsync_reader', 'delete from instance_sync_shadow');
    assert.equal((await as('virtsync_writer').query('delete from instance_sync_shadow')).rowCount, 2);
  });

  test('the writer updates instances and writes and prunes the outbox, but not the audit trail', async () => {
    assert.equal((await as('virtsync_writer').query(updateInstance, [uuid])).rowCount, 1);
    await as('virtsync_writer').query("insert into change_outbox (event_id, routing_key, payload) values (gen_random_uuid(), 'k', '{}')");
    await as('virtsync_writer').query("delete from change_outbox where routing_key = 'k' and published_at < now()");
    await denied('virtsync_writer', insertAudit, [randomUUID(), uuid]);
    await denied('virtsync_writer', 'delete from instances where uuid = $1', [uuid]);
    await denied('virtsync_writer', "insert into instances (uuid, host, power_state, vm_state) values (gen_random_uuid(), 'h1', 1, 'active')");
  });

  test('the writer reads host liveness for the unreachable-host policy, and leaves it to the leader', async () => {
    await as('virtsync_writer').query('select host from host_liveness where state = $1', ['unreachable']);
    await as('virtsync_writer').query('select state from pipeline_health');
    await denied('virtsync_writer', "update host_liveness set state = 'healthy'");
    await denied('virtsync_writer', "insert into pipeline_health (component, state, detail) values ('report-path', 'ok', 'x')");
  });

  test('the audit subscriber only appends to its trail and records host reports', async () => {
    const eventId = randomUUID();
    const inserted = await as('virtsync_audit').query(`${insertAudit} on conflict (event_id) do nothing returning event_id`, [eventId, uuid]);
    assert.equal(inserted.rowCount, 1);
    await denied('virtsync_audit', 'update audit_log set reason = $1', ['rewritten']);
    await denied('virtsync_audit', 'delete from audit_log');
    await denied('virtsync_audit', updateInstance, [uuid]);
  });

  test('the tick producer reads the host list, not instances', async () => {
    assert.equal((await as('virtsync_tick_producer').query('select host from compute_hosts')).rowCount, 2);
    await denied('virtsync_tick_producer', 'select uuid from instances');
  });

  test('host liveness: the audit subscriber records receipts, the producer keeps liveness, the reader reads it', async (t) => {
    await recordReportReceipts(kyselyAs('virtsync_audit', t), [
      {
        schemaVersion: SCHEMA_VERSION, host: 'h1', tickId: randomUUID(), cycle: 7, trigger: 'periodic', startedAt: new Date().toISOString(),
        durationMs: 1, outcome: 'failed', error: 'libvirt down', dbCount: 1, hypervisorCount: 0, compared: 0, drifted: 0, missing: 0, unknown: 0, published: 0,
      },
    ]);
    const producer = kyselyAs('virtsync_tick_producer', t);
    await producer.transaction().execute(async (trx) => {
      await forgetDisabledHosts(trx);
      assert.equal((await readLivenessInputs(trx))[0]?.consecutiveFailures, 1);
      await insertLiveness(trx, [{ host: 'h1', state: 'healthy', reason: 'new' }]);
      await updateLiveness(trx, [{ host: 'h1', state: 'failing', reason: 'test' }]);
      await insertTransitions(trx, [{ transitionId: randomUUID(), host: 'h1', fromState: 'healthy', toState: 'failing', payload: {} }]);
      await recordPipelineHealth(trx, { component: 'report-path', state: 'ok', detail: 'test' });
    });
    const pending = await listUnpublishedTransitions(producer, 10);
    await markTransitionsPublished(producer, pending.map((p) => p.transitionId));
    const reader = kyselyAs('virtsync_reader', t);
    assert.equal((await listHostLiveness(reader))[0]?.state, 'failing');
    assert.equal((await listPipelineHealth(reader)).length, 1);
    await denied('virtsync_reader', "update host_liveness set state = 'healthy'");
    await denied('virtsync_audit', "update host_liveness set state = 'healthy'");
    await denied('virtsync_tick_producer', "update host_report_receipts set consecutive_failures = 0");
  });

  test('the reader role reads everything and writes nothing', async () => {
    assert.equal((await as('virtsync_reader').query('select uuid from instances')).rowCount, 2);
    await as('virtsync_reader').query('select * from audit_log');
    await as('virtsync_reader').query('select * from host_sync_reports');
    await denied('virtsync_reader', updateInstance, [uuid]);
  });
});
