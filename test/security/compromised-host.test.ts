/**
 * A compromised compute host can lie only about itself (issue 16). Three hosts, each with a
 * real agent process logging in with its own certificate, on a TLS-only broker and database
 * of the test's own; then h1's credentials are used the way an attacker on h1 would, and
 * every attempt must be refused. Each attack prints `SECURITY <attack> refused=yes|no`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ChannelModel } from 'amqplib';
import { eventObservationRoutingKey, Exchange, observationRoutingKey, ORIGIN_QUEUE_HEADER, Queue, REASON_HEADER, tickQueue } from '../../shared/bus/topology.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { PowerState } from '../../shared/power-state.ts';
import { waitFor } from '../../tools/wait-for.ts';
import {
  type Attempt,
  attemptAmqpConnect,
  attemptOnChannel,
  attemptPublish,
  connectDatabaseWithCertificate,
  connectWithCertificate,
  externalLogin,
} from './harness/host-credentials.ts';
import { type SecurityRig, startSecurityRig, waitForLogLine } from './harness/security-rig.ts';

const HOSTS = ['h1', 'h2', 'h3'] as const;
/** h1's instance and h2's two: u1 and u2 have drifted to shutoff, u3 really runs. */
const u1 = randomUUID();
const u2 = randomUUID();
const u3 = randomUUID();

let rig: SecurityRig;
let h1: ChannelModel;

function report(attack: string, refused: boolean, detail: string): void {
  console.log(`SECURITY ${attack} refused=${refused ? 'yes' : 'no'}${detail === '' ? '' : ` (${detail})`}`);
}

function reportAttempt(attack: string, attempt: Attempt): void {
  report(attack, attempt.refused, attempt.refused ? attempt.reason.split('\n')[0] ?? '' : 'accepted');
}

async function powerStateOf(uuid: string): Promise<number> {
  const { rows } = await rig.admin.query<{ power_state: number }>('select power_state from instances where uuid = $1', [uuid]);
  return rows[0]?.power_state ?? -1;
}

function observation(host: string, uuid: string, powerState: number): object {
  return {
    schemaVersion: SCHEMA_VERSION,
    host,
    observedAt: new Date().toISOString(),
    trigger: 'event',
    tickId: null,
    observations: [{ observationId: randomUUID(), instanceUuid: uuid, powerState }],
  };
}

before(async () => {
  rig = await startSecurityRig();
  for (const host of HOSTS) {
    const added = await rig.cli(['hosts', 'add', host], rig.operatorEnv);
    assert.equal(added.code, 0, added.stderr);
  }
  // Re-running is safe: provisioning is idempotent.
  assert.equal((await rig.cli(['hosts', 'add', 'h1'], rig.operatorEnv)).code, 0);
  for (const [uuid, host] of [[u1, 'h1'], [u2, 'h2'], [u3, 'h2']] as const) {
    await rig.admin.query(`insert into instances (uuid, host, power_state, vm_state) values ($1, $2, ${PowerState.RUNNING}, 'active')`, [uuid, host]);
  }
  await rig.writeHost('h1', [{ uuid: u1, state: PowerState.SHUTOFF }]);
  await rig.writeHost('h2', [{ uuid: u2, state: PowerState.SHUTOFF }, { uuid: u3, state: PowerState.RUNNING }]);
  await rig.writeHost('h3', []);
  const writer = rig.startWriter();
  const agents = await Promise.all(HOSTS.map((host) => rig.startAgent(host)));
  await Promise.all([writer, ...agents].map((service) => waitForLogLine(service, 'service started')));
  h1 = await connectWithCertificate(rig.amqpsUrl, rig.certificates.caFile, await rig.certificates.client('h1'));
});

after(async () => {
  await h1?.close().catch(() => undefined);
  await rig?.stop();
});

describe('a compromised compute host can lie only about itself', () => {
  test('each host’s own agent, with its own identities, syncs its host through TLS', async () => {
    const synced = await rig.cli(['sync', ...HOSTS], rig.operatorEnv);
    assert.equal(synced.code, 0, synced.stderr);
    await waitFor('u1 and u2 applied as shut off', async () => (await powerStateOf(u1)) === PowerState.SHUTOFF && (await powerStateOf(u2)) === PowerState.SHUTOFF, {
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    assert.equal(await powerStateOf(u3), PowerState.RUNNING);
  });

  test('h1 publishes an observation of h2’s instance under h2’s routing key: refused by the topic permission', async () => {
    const attempt = await attemptPublish(h1, Exchange.observations, observationRoutingKey('h2'), observation('h2', u3, PowerState.SHUTOFF), { userId: 'h1' });
    reportAttempt('forged-observation-other-routing-key', attempt);
    assert.ok(attempt.refused);
    assert.match(attempt.reason, /ACCESS_REFUSED.*observation\.h2/);
  });

  test('h1 publishes an observation naming h2 under its own routing key: dead-lettered by the writer, row unchanged', async () => {
    const attempt = await attemptPublish(h1, Exchange.observations, observationRoutingKey('h1'), observation('h2', u3, PowerState.SHUTOFF), { userId: 'h1' });
    assert.equal(attempt.refused, false, 'the broker lets h1 publish under its own key');
    const letters = await rig.deadLetters(1);
    const reason = String(letters[0]?.properties.headers?.[REASON_HEADER] ?? '');
    const refused = /publisher h1 may only report on its own host, not on h2/.test(reason) && (await powerStateOf(u3)) === PowerState.RUNNING;
    report('forged-observation-body-host', refused, `dead-lettered: ${reason}`);
    assert.ok(refused);
  });

  test('h1 publishes an event observation of h2’s instance under h2’s event routing key: refused by the topic permission', async () => {
    const attempt = await attemptPublish(h1, Exchange.observations, eventObservationRoutingKey('h2'), observation('h2', u3, PowerState.SHUTOFF), { userId: 'h1' });
    reportAttempt('forged-event-observation-other-routing-key', attempt);
    assert.ok(attempt.refused);
    assert.match(attempt.reason, /ACCESS_REFUSED.*event-observation\.h2/);
  });

  test('h1 publishes an event observation naming h2 under its own event routing key: dead-lettered by the writer from its event queue', async () => {
    const attempt = await attemptPublish(h1, Exchange.observations, eventObservationRoutingKey('h1'), observation('h2', u3, PowerState.SHUTOFF), { userId: 'h1' });
    assert.equal(attempt.refused, false, 'the broker lets h1 publish under its own event key');
    const letter = (await rig.deadLetters(1))[0];
    const reason = String(letter?.properties.headers?.[REASON_HEADER] ?? '');
    const refused = /publisher h1 may only report on its own host, not on h2/.test(reason) && (await powerStateOf(u3)) === PowerState.RUNNING;
    report('forged-event-observation-body-host', refused, `dead-lettered: ${reason}`);
    assert.ok(refused);
    assert.equal(letter?.properties.headers?.[ORIGIN_QUEUE_HEADER], Queue.stateWriterEvents);
  });

  test('h1 sets user_id to h2’s user: refused by the broker', async () => {
    const attempt = await attemptPublish(h1, Exchange.observations, observationRoutingKey('h1'), observation('h1', u1, PowerState.RUNNING), { userId: 'h2' });
    reportAttempt('spoofed-user-id', attempt);
    assert.ok(attempt.refused);
    assert.match(attempt.reason, /PRECONDITION_FAILED.*user_id/);
  });

  test('h1 without user_id: dead-lettered by the writer (every observation must name its publisher)', async () => {
    const attempt = await attemptPublish(h1, Exchange.observations, observationRoutingKey('h1'), observation('h1', u1, PowerState.RUNNING));
    assert.equal(attempt.refused, false);
    const reason = String((await rig.deadLetters(1))[0]?.properties.headers?.[REASON_HEADER] ?? '');
    const refused = /without a publisher identity/.test(reason) && (await powerStateOf(u1)) === PowerState.SHUTOFF;
    report('observation-without-user-id', refused, `dead-lettered: ${reason}`);
    assert.ok(refused);
  });

  test('h1 consumes h2’s tick queue: refused', async () => {
    const attempt = await attemptOnChannel(h1, (channel) => channel.consume(tickQueue('h2'), () => undefined));
    reportAttempt('consume-other-host-tick-queue', attempt);
    assert.ok(attempt.refused);
    assert.match(attempt.reason, /ACCESS_REFUSED/);
  });

  test('h1 deletes the writer’s queue: refused (agents have no configure permission)', async () => {
    const attempt = await attemptOnChannel(h1, (channel) => channel.deleteQueue(Queue.stateWriter));
    reportAttempt('delete-writer-queue', attempt);
    assert.ok(attempt.refused);
  });

  test('h1 forges a dead-letter entry: refused (agents cannot write to the dead-letter exchange)', async () => {
    const attempt = await attemptPublish(h1, Exchange.deadLetter, '', observation('h2', u3, PowerState.SHUTOFF), { userId: 'h1' });
    reportAttempt('forge-dead-letter', attempt);
    assert.ok(attempt.refused);
  });

  test('h1 reads h2’s rows from PostgreSQL: no rows', async () => {
    const client = await connectDatabaseWithCertificate(rig.database.port, 'virtsync', 'agent:h1', rig.certificates.caFile, await rig.certificates.client('h1'));
    try {
      const others = await client.query('select uuid from instances where host = $1', ['h2']);
      const all = await client.query<{ uuid: string }>('select uuid from instances');
      // The writer keeps a sync-state row for u1 and u2 (it applied both): h1 sees its own only.
      const syncState = await client.query<{ uuid: string }>('select uuid from instance_sync_state');
      const everySyncState = await rig.admin.query('select uuid from instance_sync_state');
      const refused = others.rowCount === 0 && all.rows.every((row) => row.uuid === u1) && syncState.rows.every((row) => row.uuid === u1);
      report(
        'read-other-host-rows',
        refused,
        `rows of h2 visible: ${others.rowCount}, instances visible: ${all.rowCount}, sync-state rows visible: ${syncState.rowCount} of ${everySyncState.rowCount}`,
      );
      assert.ok(refused);
      await assert.rejects(client.query(`update instances set power_state = ${PowerState.RUNNING} where uuid = $1`, [u1]), /permission denied/);
    } finally {
      await client.end();
    }
  });

  test('h1’s certificate logs in to PostgreSQL as h2’s login: refused', async () => {
    const attempt = await connectDatabaseWithCertificate(rig.database.port, 'virtsync', 'agent:h2', rig.certificates.caFile, await rig.certificates.client('h1')).then(
      async (client): Promise<Attempt> => {
        await client.end();
        return { refused: false };
      },
      (err: unknown): Attempt => ({ refused: true, reason: String(err) }),
    );
    reportAttempt('database-login-as-other-host', attempt);
    assert.ok(attempt.refused);
  });

  test('a certificate for h2 from a CA nobody trusts: refused at the TLS handshake', async () => {
    const rogue = await rig.certificates.rogueClient('h2');
    const attempt = await attemptAmqpConnect(rig.amqpsUrl, externalLogin(rig.certificates.caFile, rogue));
    reportAttempt('rogue-ca-certificate', attempt);
    assert.ok(attempt.refused);
  });

  test('plain-text AMQP to the TLS-only broker: refused with a clear error', async () => {
    const plain = new URL(rig.operatorEnv.AMQP_URL ?? '');
    plain.protocol = 'amqp:';
    const { AMQP_CA_FILE: _ca, AMQP_CERT_FILE: _cert, AMQP_KEY_FILE: _key, ...withoutTls } = rig.operatorEnv;
    const result = await rig.cli(['bus', 'setup'], { ...withoutTls, AMQP_URL: plain.toString() });
    const refused = result.code === 3 && /TLS only/.test(result.stderr);
    report('plaintext-amqp', refused, result.stderr.trim().split('\n')[0] ?? '');
    assert.ok(refused, result.stderr);
  });

  test('plain-text PostgreSQL to the TLS-only cluster: refused with a clear error', async () => {
    const { DATABASE_CA_FILE: _ca, ...withoutTls } = rig.operatorEnv;
    const result = await rig.cli(['migrate'], withoutTls);
    // The server refused the login (exit 4, refused), and says why: TLS only.
    const refused = result.code === 4 && /TLS connections only/.test(result.stderr);
    report('plaintext-postgres', refused, result.stderr.trim().split('\n')[0] ?? '');
    assert.ok(refused, result.stderr);
  });

  test('hosts remove revokes h3: its agent can no longer log in', async () => {
    const removed = await rig.cli(['hosts', 'remove', 'h3'], rig.operatorEnv);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await rig.cli(['hosts', 'remove', 'h3'], rig.operatorEnv)).code, 0, 'removing twice is safe');
    const attempt = await attemptAmqpConnect(rig.amqpsUrl, externalLogin(rig.certificates.caFile, await rig.certificates.client('h3')));
    reportAttempt('removed-host-broker-login', attempt);
    assert.ok(attempt.refused);
  });

  test('no password of the run appears in any log line or CLI output', async () => {
    const logs = await rig.allLogs();
    const leaked = rig.passwords.filter((password) => logs.includes(password));
    // The writer logs its configuration at debug, URLs included: the check sees them redacted, not absent.
    const redactedUrls = logs.split('"databaseUrl":"[redacted]"').length - 1;
    report('passwords-in-logs', leaked.length === 0, `${rig.passwords.length} passwords, ${logs.length} bytes of logs, ${leaked.length} found, ${redactedUrls} redacted URLs`);
    assert.deepEqual(leaked, []);
    assert.ok(redactedUrls > 0, 'the configuration lines were logged, their URLs redacted');
  });
});
