/**
 * Truth that does not depend on clocks (issue 12, part 1), on the real services: agents
 * (in process) reading the shared libvirtd, the writer and the audit subscriber, real
 * PostgreSQL and RabbitMQ. Every test changes domains behind the cloud's back, looks, and
 * ends with the rows equal to the hypervisor and the audit log holding exactly the
 * committed changes.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Message } from 'amqplib';
import { sql } from 'kysely';
import { type BusConnection, connectBus } from '../../../shared/bus/connect.ts';
import { eventObservationRoutingKey, Exchange, observationRoutingKey, Queue, tickQueue } from '../../../shared/bus/topology.ts';
import { auditSubscriberEnv, loadConfig, stateWriterEnv, syncAgentEnv } from '../../../shared/config.ts';
import { parseMessage } from '../../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../../shared/messages/fields.ts';
import { hostReportSchema } from '../../../shared/messages/host-report.ts';
import type { HostObservations } from '../../../shared/messages/observation.ts';
import { agentClockOffset, writerDecisions } from '../../../shared/metrics.ts';
import { type PowerState, PowerState as State } from '../../../shared/power-state.ts';
import { type RunningService, startService } from '../../../shared/service-runner.ts';
import { auditSubscriber } from '../../../services/audit-subscriber/audit-subscriber.ts';
import { stateWriter } from '../../../services/state-writer/state-writer.ts';
import { syncAgent } from '../../../services/sync-agent/sync-agent.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { observationsQueued } from '../../helpers/observations.ts';
import { type DaemonDomains, ensureLibvirtd, LIBVIRTD_URI, openDaemonDomains } from '../../../tools/local-env/libvirtd.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { queueConsumers } from '../../helpers/queue-consumers.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

const HOUR_MS = 3_600_000;
const suffix = randomBytes(3).toString('hex');
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let domains: DaemonDomains;
let reports: Message[];
/** What each test started, stopped after it (last first). */
const running: Array<{ service: RunningService; bus: BusConnection }> = [];

before(async () => {
  await ensureLibvirtd();
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  domains = await openDaemonDomains();
  reports = await probe.collect(Exchange.reports, 'report.#');
  await startAuditSubscriber();
});

afterEach(async () => {
  // The audit subscriber (the first) runs for the whole file.
  while (running.length > 1) await stopLast();
});

after(async () => {
  while (running.length > 0) await stopLast();
  await domains?.removeAll();
  await domains?.close();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
});

async function stopLast(): Promise<void> {
  const last = running.pop();
  await last?.service.stop();
  await last?.bus.close();
}

const env = (): Record<string, string> => ({ DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl });

async function track(start: (bus: BusConnection) => Promise<RunningService>, name: string): Promise<RunningService> {
  const bus = connectBus({ url: vhost.amqpUrl, name, log: testLogger });
  const service = await start(bus);
  running.push({ service, bus });
  return service;
}

function startAuditSubscriber(): Promise<RunningService> {
  return track((bus) => startService(auditSubscriber, { config: loadConfig(auditSubscriberEnv, env()), db: database.db, bus, log: testLogger }), 'audit');
}

function startWriter(): Promise<RunningService> {
  const config = loadConfig(stateWriterEnv, { ...env(), WRITER_BATCH_LINGER_MS: '10' });
  return track((bus) => startService(stateWriter, { config, db: database.db, bus, log: testLogger }), 'writer');
}

/** An agent for `host` whose clock is `clockOffsetMs` off the writer's. */
function startAgent(host: string, options: { clockOffsetMs?: number; lifecycleEvents?: boolean } = {}): Promise<RunningService> {
  const config = loadConfig(syncAgentEnv, {
    ...env(),
    AGENT_HOSTS: host,
    LIBVIRT_URI: LIBVIRTD_URI,
    AGENT_CLOCK_OFFSET_MS: String(options.clockOffsetMs ?? 0),
    AGENT_LIFECYCLE_EVENTS: String(options.lifecycleEvents ?? false),
    EVENT_DEBOUNCE_MS: '200',
    // Every look here is the test's own: a start-up sync would add one at a random moment of its
    // window (in (d) it read the cloud's write and committed PAUSED before the assertion, once).
    AGENT_STARTUP_SYNC: 'false',
  });
  return track((bus) => startService(syncAgent, { config, db: database.db, bus, log: testLogger }), `agent ${host}`);
}

/** A domain on the shared libvirtd and its row, both RUNNING on `host`. */
async function instanceOn(host: string, name: string): Promise<string> {
  const uuid = await domains.start(`vs-clock-${name}-${suffix}`);
  await database.db.insertInto('instances').values({ uuid, host, power_state: State.RUNNING, vm_state: 'active' }).execute();
  return uuid;
}

async function domain(uuid: string) {
  return domains.hypervisor.domainLookupByUUIDString(uuid);
}

function reportsOf(host: string) {
  return reports.flatMap((message) => {
    const parsed = parseMessage(hostReportSchema, message.content);
    return parsed.ok && parsed.value.host === host ? [parsed.value] : [];
  });
}

/** Ticks `host` as `virtsync sync` does and waits for its agent's report of that tick. */
async function look(host: string): Promise<void> {
  // A tick published before the agent has declared and consumes its queue would go nowhere.
  await waitFor(`an agent consuming ${host}'s ticks`, async () => (await queueConsumers(vhost.amqpUrl, tickQueue(host))) > 0, { timeoutMs: 20_000 });
  const tickId = randomUUID();
  probe.publish(Exchange.ticks, host, { schemaVersion: SCHEMA_VERSION, tickId, host, cycle: 0, scheduledAt: new Date().toISOString(), trigger: 'manual' });
  await waitFor(`the report of ${host}'s tick`, () => reportsOf(host).some((report) => report.tickId === tickId), { timeoutMs: 20_000 });
  const report = reportsOf(host).find((r) => r.tickId === tickId);
  assert.equal(report?.outcome, 'synced', report?.error ?? undefined);
}

async function rowOf(uuid: string) {
  return database.db.selectFrom('instances').select(['host', 'power_state', 'vm_state']).where('uuid', '=', uuid).executeTakeFirstOrThrow();
}

async function waitForRow(uuid: string, powerState: PowerState): Promise<void> {
  await waitFor(`row ${uuid} to be ${powerState}`, async () => (await rowOf(uuid)).power_state === powerState, { timeoutMs: 20_000 });
}

/** Every committed change (outbox) is in the audit log exactly once, and nothing else is. */
async function assertAuditMatchesCommitted(): Promise<void> {
  await waitFor(
    'every committed change audited',
    async () => {
      const [outbox, audit] = await Promise.all([
        database.db.selectFrom('change_outbox').select('event_id').execute(),
        database.db.selectFrom('audit_log').select('event_id').execute(),
      ]);
      return outbox.length === audit.length && outbox.every((row) => audit.some((entry) => entry.event_id === row.event_id));
    },
    { timeoutMs: 20_000 },
  );
}

/** The instance's audited changes, once everything committed so far is audited. */
async function changesOf(uuid: string): Promise<Array<{ rule: string; after_power_state: number }>> {
  await assertAuditMatchesCommitted();
  return database.db.selectFrom('audit_log').select(['rule', 'after_power_state']).where('instance_uuid', '=', uuid).orderBy('committed_at').execute();
}

async function decisions(rule: string): Promise<number> {
  // The writer's own metric, which every in-process service shares in this test.
  const metric = await writerDecisions.get();
  return metric.values.filter((value) => value.labels.rule === rule).reduce((sum, value) => sum + value.value, 0);
}

describe('(a) an agent clock an hour off the writer\'s changes nothing that is written', () => {
  for (const offsetMs of [HOUR_MS, -HOUR_MS]) {
    test(`clock ${offsetMs > 0 ? '+' : '-'}1 h: every change is committed, in order, and the skew is measured`, async () => {
      const host = `clock${offsetMs > 0 ? 'ahead' : 'behind'}-${suffix}`;
      const uuid = await instanceOn(host, `${host}-a`);
      await startWriter();
      await startAgent(host, { clockOffsetMs: offsetMs });
      const vm = await domain(uuid);

      await domains.hypervisor.domainSuspend(vm);
      await look(host);
      await waitForRow(uuid, State.PAUSED);
      await domains.hypervisor.domainResume(vm);
      await look(host);
      await waitForRow(uuid, State.RUNNING);
      await domains.hypervisor.domainDestroy(vm);
      await look(host);
      await waitForRow(uuid, State.SHUTOFF);

      assert.deepEqual(await rowOf(uuid), { host, power_state: State.SHUTOFF, vm_state: 'shutoff' });
      assert.deepEqual((await changesOf(uuid)).map((c) => c.after_power_state), [State.PAUSED, State.RUNNING, State.SHUTOFF]);
      const offset = (await agentClockOffset.get()).values.find((v) => v.labels.host === host);
      assert.ok(offset !== undefined && Math.abs(offset.value * 1000 - offsetMs) < 60_000, `measured offset ${offset?.value} s`);
      await assertAuditMatchesCommitted();
    });
  }
});

test('(b) a year-3000 stamp, then a real change: the change is committed', async () => {
  const host = `y3k-${suffix}`;
  const uuid = await instanceOn(host, 'y3k');
  await startWriter();
  // What a hostile or broken clock sends: valid by the contract, a look of this host, the row as it is.
  const { rows } = await sql<{ epoch: string }>`select nextval('virtsync_agent_epoch') as epoch`.execute(database.db);
  const message: HostObservations = {
    schemaVersion: SCHEMA_VERSION,
    host,
    observedAt: '3000-01-01T00:00:00.000Z',
    look: { epoch: Number(rows[0]?.epoch), seq: 1 },
    trigger: 'tick',
    tickId: null,
    observations: [{ observationId: randomUUID(), instanceUuid: uuid, powerState: State.RUNNING, expected: { powerState: State.RUNNING, vmState: 'active', taskState: null } }],
  };
  const equalBefore = await decisions('equal');
  probe.publish(Exchange.observations, observationRoutingKey(host), message);
  await waitFor('the year-3000 observation decided', async () => (await decisions('equal')) > equalBefore, { timeoutMs: 20_000 });

  await startAgent(host);
  await domains.hypervisor.domainDestroy(await domain(uuid));
  await look(host);
  await waitForRow(uuid, State.SHUTOFF);
  assert.deepEqual((await changesOf(uuid)).map((c) => c.rule), ['stopped']);
  await assertAuditMatchesCommitted();
});

test('(c) a migration h1 -> h2 with the two agents\' clocks 10 min apart: the destination\'s looks are committed', async () => {
  const [h1, h2] = [`mig1-${suffix}`, `mig2-${suffix}`];
  const uuid = await instanceOn(h1, 'migrating');
  await startWriter();
  await startAgent(h1, { clockOffsetMs: 5 * 60_000 });
  await startAgent(h2, { clockOffsetMs: -5 * 60_000 });
  const vm = await domain(uuid);

  await domains.hypervisor.domainSuspend(vm);
  await look(h1);
  await waitForRow(uuid, State.PAUSED);
  // The cloud finishes the migration; the source's clock is ten minutes ahead of the destination's.
  await database.db.updateTable('instances').set({ host: h2 }).where('uuid', '=', uuid).execute();
  await domains.hypervisor.domainResume(vm);
  await look(h2);
  await waitForRow(uuid, State.RUNNING);
  // A late look of the source is the source's business no more.
  await domains.hypervisor.domainSuspend(vm);
  await look(h1);
  await look(h2);
  await waitForRow(uuid, State.PAUSED);
  assert.deepEqual(await rowOf(uuid), { host: h2, power_state: State.PAUSED, vm_state: 'active' });
  assert.deepEqual((await changesOf(uuid)).map((c) => c.after_power_state), [State.PAUSED, State.RUNNING, State.PAUSED]);
  await assertAuditMatchesCommitted();
});

test('(d) a cloud write between the agent\'s read and the writer\'s commit wins; the next look converges', async () => {
  const host = `cloudwins-${suffix}`;
  const uuid = await instanceOn(host, 'cloudwins');
  await startAgent(host);
  // No writer yet: the agent's observation waits in the queue while the cloud writes.
  await domains.hypervisor.domainSuspend(await domain(uuid));
  await look(host);
  await database.db.updateTable('instances').set({ power_state: State.SHUTOFF, vm_state: 'shutoff' }).where('uuid', '=', uuid).execute();
  const skippedBefore = await decisions('changed-after-read');
  await startWriter();
  await waitFor('the observation skipped as changed after read', async () => (await decisions('changed-after-read')) > skippedBefore, { timeoutMs: 20_000 });
  assert.deepEqual(await rowOf(uuid), { host, power_state: State.SHUTOFF, vm_state: 'shutoff' }, "the cloud's write stands");

  await look(host);
  await waitForRow(uuid, State.PAUSED);
  assert.deepEqual((await changesOf(uuid)).map((c) => c.rule), ['power-only']);
  await assertAuditMatchesCommitted();
});

describe('(e) a tick look and a later event look of one host', () => {
  for (const arrival of ['tick first', 'event first'] as const) {
    test(`${arrival}: the event's state ends in the row`, async () => {
      const host = `overlap${arrival === 'tick first' ? 't' : 'e'}-${suffix}`;
      const uuid = await instanceOn(host, host);
      await startAgent(host, { lifecycleEvents: true });
      const vm = await domain(uuid);
      const queued = (): Promise<number> => observationsQueued(probe);
      // No writer runs: looks wait in its queues. The watcher is live once a suspend comes back as an event look.
      await waitFor(
        'the lifecycle watcher to look after a suspend',
        async () => {
          if ((await queued()) > 0) return true;
          await domains.hypervisor.domainResume(vm).catch(() => undefined);
          await domains.hypervisor.domainSuspend(vm);
          return false;
        },
        { timeoutMs: 20_000, intervalMs: 1_500 },
      );
      await look(host); // t0: the tick's look, PAUSED
      const beforeDestroy = await queued();
      await domains.hypervisor.domainDestroy(vm); // t1: the event's look, SHUTOFF
      await waitFor('the event look queued', async () => (await queued()) > beforeDestroy, { timeoutMs: 20_000 });
      const tickLooks = await probe.drain(Queue.stateWriter, await probe.messageCount(Queue.stateWriter));
      const eventLooks = await probe.drain(Queue.stateWriterEvents, await probe.messageCount(Queue.stateWriterEvents));
      // Re-published in the arrival order under test, each under its own key, the second only once the first is decided.
      const tick = { looks: tickLooks, routingKey: observationRoutingKey(host) };
      const event = { looks: eventLooks, routingKey: eventObservationRoutingKey(host) };
      await startWriter();
      for (const { looks, routingKey } of arrival === 'tick first' ? [tick, event] : [event, tick]) {
        for (const message of looks) probe.publish(Exchange.observations, routingKey, message.content);
        await waitFor('every queued observation decided', async () => (await queued()) === 0, { timeoutMs: 20_000 });
      }
      await waitForRow(uuid, State.SHUTOFF);
      assert.deepEqual(await rowOf(uuid), { host, power_state: State.SHUTOFF, vm_state: 'shutoff' });
      await assertAuditMatchesCommitted();
    });
  }
});

test('(f) the cloud saving every row every 100 ms without changing it starves nothing', async () => {
  const host = `noop-${suffix}`;
  const uuids = await Promise.all(Array.from({ length: 8 }, (_, i) => instanceOn(host, `noop${i}`)));
  await startWriter();
  await startAgent(host);
  let saving = true;
  const saver = (async () => {
    while (saving) {
      await sql`update instances set vm_state = vm_state, task_state = task_state, updated_at = now() where host = ${host}`.execute(database.db);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    for (const uuid of uuids) await domains.hypervisor.domainDestroy(await domain(uuid));
    await look(host);
    for (const uuid of uuids) await waitForRow(uuid, State.SHUTOFF);
  } finally {
    saving = false;
    await saver;
  }
  for (const uuid of uuids) assert.deepEqual((await changesOf(uuid)).map((c) => c.rule), ['stopped']);
  await assertAuditMatchesCommitted();
});

test('(g) an agent of the previous contract beside a new one: its observations are skipped with a reason, never dead-lettered', async () => {
  const [oldHost, newHost] = [`oldagent-${suffix}`, `newagent-${suffix}`];
  const [oldUuid, newUuid] = [await instanceOn(oldHost, 'old'), await instanceOn(newHost, 'new')];
  await startWriter();
  await startAgent(newHost);
  const legacyBefore = await decisions('legacy-contract');
  // Exactly what an agent of the previous release publishes: no look, no expected row.
  probe.publish(Exchange.observations, observationRoutingKey(oldHost), {
    schemaVersion: SCHEMA_VERSION,
    host: oldHost,
    observedAt: new Date().toISOString(),
    trigger: 'tick',
    tickId: null,
    observations: [{ observationId: randomUUID(), instanceUuid: oldUuid, powerState: State.SHUTOFF }],
  });
  await domains.hypervisor.domainDestroy(await domain(newUuid));
  await look(newHost);
  await waitForRow(newUuid, State.SHUTOFF);
  await waitFor('the old agent\'s observation decided', async () => (await decisions('legacy-contract')) > legacyBefore, { timeoutMs: 20_000 });
  assert.equal(await probe.messageCount(Queue.deadLetter), 0, 'nothing dead-lettered');
  assert.deepEqual(await rowOf(oldUuid), { host: oldHost, power_state: State.RUNNING, vm_state: 'active' }, 'left for a new agent to look');
  // Once that host's agent is upgraded, its look converges.
  await domains.hypervisor.domainDestroy(await domain(oldUuid));
  await startAgent(oldHost);
  await look(oldHost);
  await waitForRow(oldUuid, State.SHUTOFF);
  await assertAuditMatchesCommitted();
});

test('host reports are kept by look order, not by the agent\'s stamp', async () => {
  const host = `reports-${suffix}`;
  await instanceOn(host, 'reports');
  await startAgent(host, { clockOffsetMs: HOUR_MS });
  await look(host);
  await stopLast();
  await startAgent(host, { clockOffsetMs: -HOUR_MS });
  await look(host);
  // The second agent's report is newer by look order although its stamp is two hours older.
  await waitFor('the newest report stored', async () => {
    const row = await database.db.selectFrom('host_sync_reports').select(['look_epoch', 'started_at']).where('host', '=', host).executeTakeFirst();
    const newest = reportsOf(host).at(-1);
    return row !== undefined && newest?.look !== undefined && Number(row.look_epoch) === newest.look.epoch;
  }, { timeoutMs: 20_000 });
  const stored = await database.db.selectFrom('host_sync_reports').select('started_at').where('host', '=', host).executeTakeFirstOrThrow();
  assert.ok(stored.started_at.getTime() < Date.now() - HOUR_MS / 2, 'the stored report is the one stamped an hour behind');
});
