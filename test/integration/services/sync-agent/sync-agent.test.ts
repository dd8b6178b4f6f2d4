/**
 * The sync agent in-process against real PostgreSQL, RabbitMQ and libvirt test:/// hosts:
 * a tick yields one observation per drifted or missing row (none for rows in sync), an
 * unknown-domain event per domain no row knows, and a host report with the counts; the
 * tick is acked. Ticks that cannot be processed are dead-lettered with a reason, a host
 * whose hypervisor cannot be opened reports a failure without holding up the other, and
 * the agent never writes to the database.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Message } from 'amqplib';
import type { z } from 'zod';
import { syncAgent } from '../../../../services/sync-agent/sync-agent.ts';
import { connectBus, type BusConnection } from '../../../../shared/bus/connect.ts';
import { declareTickQueue, Exchange, observationRoutingKey, Queue, REASON_HEADER, tickQueue } from '../../../../shared/bus/topology.ts';
import { loadConfig, syncAgentEnv } from '../../../../shared/config.ts';
import type { InstanceRow, NewInstance } from '../../../../shared/db/database.ts';
import { encodeMessage, parseMessage } from '../../../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../../../shared/messages/fields.ts';
import { type HostReport, hostReportSchema } from '../../../../shared/messages/host-report.ts';
import { hostObservationsSchema, type Observation, observationsOf } from '../../../../shared/messages/observation.ts';
import { type Tick, tickSchema } from '../../../../shared/messages/tick.ts';
import { unknownDomainSchema } from '../../../../shared/messages/unknown-domain.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { type RunningService, startService } from '../../../../shared/service-runner.ts';
import type { VmState } from '../../../../shared/vm-state.ts';
import type { SimulatedDomain } from '../../../../tools/fleet/node-xml.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../../helpers/bus-probe.ts';
import { createLibvirtHosts, type LibvirtHosts } from '../../../helpers/libvirt-host.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';
import { testLogger } from '../../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../../tools/local-env/vhost.ts';

const suffix = randomBytes(3).toString('hex');
/** Its node XML exists. */
const host = `sync-${suffix}`;
/** Its node XML is never written: its libvirt URI points at a missing file. */
const brokenHost = `broken-${suffix}`;
/** Rows of a host this agent does not serve. */
const otherHost = `other-${suffix}`;

interface Case {
  uuid: string;
  row: { powerState: PowerState; vmState: VmState } | null;
  /** On the hypervisor, in this state; null: not there. */
  domain: PowerState | null;
}

const scenario = (row: Case['row'], domain: Case['domain']): Case => ({ uuid: randomUUID(), row, domain });
const inSync = [
  scenario({ powerState: PowerState.RUNNING, vmState: 'active' }, PowerState.RUNNING),
  scenario({ powerState: PowerState.SHUTOFF, vmState: 'stopped' }, PowerState.SHUTOFF),
  scenario({ powerState: PowerState.PAUSED, vmState: 'paused' }, PowerState.PAUSED),
];
const drifted = [
  scenario({ powerState: PowerState.RUNNING, vmState: 'active' }, PowerState.SHUTOFF),
  scenario({ powerState: PowerState.RUNNING, vmState: 'active' }, PowerState.PAUSED),
  scenario({ powerState: PowerState.RUNNING, vmState: 'active' }, PowerState.CRASHED),
  scenario({ powerState: PowerState.SHUTOFF, vmState: 'stopped' }, PowerState.RUNNING),
  scenario({ powerState: PowerState.PAUSED, vmState: 'paused' }, PowerState.SUSPENDED),
  scenario({ powerState: PowerState.NOSTATE, vmState: 'active' }, PowerState.BLOCKED),
];
const missing = [scenario({ powerState: PowerState.RUNNING, vmState: 'active' }, null)];
const unknown = [scenario(null, PowerState.RUNNING)];
/** Dead rows are not the host's any more: neither counted nor reported missing. */
const softDeletedUuid = randomUUID();

let database: TestDatabase;
let vhost: TestVhost;
let libvirt: LibvirtHosts;
let probe: BusProbe;
let bus: BusConnection | undefined;
let agent: RunningService | undefined;
let reportMessages: Message[];
let unknownMessages: Message[];
let rowsBefore: InstanceRow[];
let startupReports: HostReport[] = [];
let startupObservations: Array<{ observation: Observation; routingKey: string }> = [];

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  libvirt = await createLibvirtHosts();
  probe = await openBusProbe(vhost.amqpUrl);

  const rows: NewInstance[] = [...inSync, ...drifted, ...missing].map(({ uuid, row }) => ({
    uuid,
    host,
    power_state: row?.powerState ?? PowerState.NOSTATE,
    vm_state: row?.vmState ?? 'error',
  }));
  rows.push(
    { uuid: softDeletedUuid, host, power_state: PowerState.RUNNING, vm_state: 'deleted', deleted_at: new Date() },
    { uuid: randomUUID(), host: otherHost, power_state: PowerState.RUNNING, vm_state: 'active' },
    { uuid: randomUUID(), host: brokenHost, power_state: PowerState.RUNNING, vm_state: 'active' },
  );
  await database.db.insertInto('instances').values(rows).execute();
  rowsBefore = await allRows();

  // Upper-case in the node XML: the agent must still match the rows' lower-case UUIDs.
  const domains: SimulatedDomain[] = [...inSync, ...drifted, ...unknown].flatMap(({ uuid, domain }) =>
    domain === null ? [] : [{ uuid: uuid.toUpperCase(), state: domain }],
  );
  await libvirt.write(host, domains);

  reportMessages = await probe.collect(Exchange.reports, 'report.#');
  unknownMessages = await probe.collect(Exchange.reports, 'unknown.#');
  // The agent declares these too, but maybe only once its channel is up: ticks published before would be unroutable.
  for (const served of [host, brokenHost]) await declareTickQueue(probe.channel, served);

  bus = connectBus({ url: vhost.amqpUrl, name: 'test sync-agent', log: testLogger });
  const config = loadConfig(syncAgentEnv, {
    DATABASE_URL: database.url,
    AMQP_URL: vhost.amqpUrl,
    AGENT_HOSTS: `${host},${brokenHost}`,
    LIBVIRT_URI: libvirt.uriTemplate,
    // A test:/// host is private to the process that opens it: a `virsh event` child could never see its changes.
    AGENT_LIFECYCLE_EVENTS: 'false',
    AGENT_STARTUP_SYNC_WINDOW_MS: '0',
  });
  agent = await startService(syncAgent, { config, db: database.db, bus, log: testLogger });
  // At start the agent looks at each of its hosts once, without a tick: kept for their own test, then set aside.
  await waitFor('a startup sync of each host', () => reportsFor(null).length >= 2, { timeoutMs: 10_000 });
  startupReports = reportsFor(null);
  startupObservations = await takeObservations(1);
  unknownMessages.splice(0);
});

after(async () => {
  await agent?.stop();
  await bus?.close();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
  await libvirt?.remove();
});

function allRows(): Promise<InstanceRow[]> {
  return database.db.selectFrom('instances').selectAll().orderBy('uuid').execute();
}

function newTick(tickHost: string): Tick {
  return {
    schemaVersion: SCHEMA_VERSION,
    tickId: randomUUID(),
    host: tickHost,
    cycle: 7,
    scheduledAt: new Date().toISOString(),
    trigger: 'periodic',
  };
}

function publishTick(tick: Tick, routingKey = tick.host): void {
  probe.publish(Exchange.ticks, routingKey, encodeMessage(tickSchema, tick));
}

function parsedAll<S extends z.ZodType>(schema: S, messages: readonly Message[]): Array<z.output<S>> {
  return messages.map((message) => {
    const parsed = parseMessage(schema, message.content);
    if (!parsed.ok) assert.fail(`invalid message on ${message.fields.routingKey}: ${parsed.reason}`);
    return parsed.value;
  });
}

function reportsFor(tickId: string | null): HostReport[] {
  return parsedAll(hostReportSchema, reportMessages).filter((report) => report.tickId === tickId);
}

async function reportFor(tick: Tick): Promise<HostReport> {
  await waitFor(`the host report of tick ${tick.tickId}`, () => reportsFor(tick.tickId).length > 0, { timeoutMs: 10_000 });
  const reports = reportsFor(tick.tickId);
  const [report, ...others] = reports;
  assert.ok(report !== undefined);
  assert.equal(others.length, 0, 'one report per tick');
  return report;
}

/** The observations in the state writer's queue (nobody consumes it here), expecting `messages` messages. */
async function takeObservations(messages: number): Promise<Array<{ observation: Observation; routingKey: string }>> {
  const queued = await probe.drain(Queue.stateWriter, messages);
  return parsedAll(hostObservationsSchema, queued).flatMap((message, i) =>
    observationsOf(message).map((observation) => ({ observation, routingKey: queued[i]?.fields.routingKey ?? '' })),
  );
}

const byUuid = <T extends { instanceUuid: string }>(items: T[]): T[] => [...items].sort((a, b) => a.instanceUuid.localeCompare(b.instanceUuid));

/** What one tick of `host` must produce, whatever the tick. */
async function assertHostSynced(tick: Tick): Promise<void> {
  const report = await reportFor(tick);
  assert.deepEqual(
    {
      host: report.host,
      cycle: report.cycle,
      trigger: report.trigger,
      outcome: report.outcome,
      error: report.error,
      dbCount: report.dbCount,
      hypervisorCount: report.hypervisorCount,
      compared: report.compared,
      drifted: report.drifted,
      missing: report.missing,
      unknown: report.unknown,
      published: report.published,
    },
    {
      host,
      cycle: tick.cycle,
      trigger: tick.trigger,
      outcome: 'synced',
      error: null,
      dbCount: inSync.length + drifted.length + missing.length,
      hypervisorCount: inSync.length + drifted.length + unknown.length,
      compared: inSync.length + drifted.length,
      drifted: drifted.length,
      missing: missing.length,
      unknown: unknown.length,
      published: drifted.length + missing.length,
    },
  );

  // The report is published after the observations' confirms: they are all queued by now, in one message.
  const observations = await takeObservations(1);
  assert.equal(observations.length, drifted.length + missing.length, 'exactly one observation per drifted or missing row');
  const expected = [...drifted, ...missing].map(({ uuid, domain }) => ({ instanceUuid: uuid, powerState: domain }));
  assert.deepEqual(byUuid(observations.map(({ observation }) => ({ instanceUuid: observation.instanceUuid, powerState: observation.powerState }))), byUuid(expected));
  for (const { observation, routingKey } of observations) {
    assert.equal(observation.host, host);
    assert.equal(observation.tickId, tick.tickId);
    assert.equal(observation.trigger, 'tick');
    assert.equal(routingKey, observationRoutingKey(host));
    assert.ok(Date.parse(observation.observedAt) >= Date.parse(report.startedAt), 'observed during the sync');
  }
}

describe('at start, before any tick', () => {
  test('the agent syncs each of its hosts once, as an on-demand sync without a tick id', () => {
    const byHost = new Map(startupReports.map((report) => [report.host, report]));
    assert.equal(startupReports.length, 2, 'one startup sync per host');
    assert.deepEqual(
      [byHost.get(host)?.outcome, byHost.get(host)?.trigger, byHost.get(host)?.published],
      ['synced', 'manual', drifted.length + missing.length],
    );
    assert.equal(byHost.get(brokenHost)?.outcome, 'failed');
    assert.equal(startupObservations.length, drifted.length + missing.length);
    assert.ok(startupObservations.every(({ observation }) => observation.tickId === null && observation.host === host));
  });
});

describe('a tick for a host with rows in sync, drifted, missing, and a domain no row knows', () => {
  const tick = newTick(host);

  test('publishes one observation per drifted or missing row, and a synced report with the counts', async () => {
    publishTick(tick);
    await assertHostSynced(tick);
  });

  test('reports the domain no row knows as unknown, with its state, on unknown.<host>', async () => {
    await waitFor('the unknown-domain event', () => unknownMessages.length >= unknown.length, { timeoutMs: 5_000 });
    const events = parsedAll(unknownDomainSchema, unknownMessages);
    assert.deepEqual(
      events.map(({ host: eventHost, instanceUuid, powerState, trigger }) => ({ host: eventHost, instanceUuid, powerState, trigger })),
      unknown.map(({ uuid, domain }) => ({ host, instanceUuid: uuid, powerState: domain, trigger: 'tick' })),
    );
    assert.deepEqual(unknownMessages.map((message) => message.fields.routingKey), [`unknown.${host}`]);
  });

  test('acks the tick: its queue is empty afterwards', async () => {
    await waitFor('the tick queue to be empty', async () => (await probe.messageCount(tickQueue(host))) === 0, { timeoutMs: 5_000 });
  });
});

describe('ticks that cannot be processed', () => {
  test('a tick naming another host than its queue, and malformed ticks, are dead-lettered with the reason', async () => {
    const reportsBefore = reportMessages.length;
    const misrouted = newTick(brokenHost);
    publishTick(misrouted, host);
    const notJson = Buffer.from(`{"tickId": "${randomUUID()}", truncated`);
    probe.publish(Exchange.ticks, host, notJson);
    const { scheduledAt: _dropped, ...withoutScheduledAt } = newTick(host);
    const incomplete = Buffer.from(JSON.stringify(withoutScheduledAt));
    probe.publish(Exchange.ticks, host, incomplete);

    const deadLetters = await probe.drain(Queue.deadLetter, 3);
    assert.equal(deadLetters.length, 3);
    const reasonOf = (body: Buffer): string => {
      const letter = deadLetters.find((message) => message.content.equals(body));
      assert.ok(letter !== undefined, `dead letter for ${body.toString()}`);
      assert.equal(letter.properties.headers?.['x-virtsync-queue'], tickQueue(host));
      assert.equal(letter.properties.headers?.['x-virtsync-routing-key'], host);
      const reason: unknown = letter.properties.headers?.[REASON_HEADER];
      assert.equal(typeof reason, 'string', `${REASON_HEADER} header`);
      return String(reason);
    };
    const misroutedReason = reasonOf(encodeMessage(tickSchema, misrouted));
    assert.ok(misroutedReason.includes(brokenHost) && misroutedReason.includes(host), misroutedReason);
    assert.match(reasonOf(notJson), /not JSON/);
    assert.match(reasonOf(incomplete), /scheduledAt/);

    await waitFor('the tick queue to be empty', async () => (await probe.messageCount(tickQueue(host))) === 0, { timeoutMs: 5_000 });
    assert.equal(reportMessages.length, reportsBefore, 'no host was synced for a rejected tick');
    assert.equal(await probe.messageCount(Queue.stateWriter), 0, 'no observations for a rejected tick');
  });
});

describe('a host whose libvirt cannot be opened', () => {
  test('reports failed with the error, while the other host of the agent still syncs', async () => {
    const broken = newTick(brokenHost);
    const healthy = newTick(host);
    publishTick(broken);
    publishTick(healthy);

    const report = await reportFor(broken);
    assert.equal(report.host, brokenHost);
    assert.equal(report.outcome, 'failed');
    assert.ok(report.error !== null && report.error.includes(`${brokenHost}.xml`), `error names the URI: ${report.error}`);
    assert.deepEqual(
      [report.dbCount, report.hypervisorCount, report.compared, report.drifted, report.missing, report.unknown, report.published],
      [0, 0, 0, 0, 0, 0, 0],
    );
    await assertHostSynced(healthy);
    for (const served of [host, brokenHost]) {
      await waitFor(`the tick queue of ${served} to be empty`, async () => (await probe.messageCount(tickQueue(served))) === 0, { timeoutMs: 5_000 });
    }
  });
});

describe('the agent only reads', () => {
  test('the instances table is unchanged after its ticks', async () => {
    assert.deepEqual(await allRows(), rowsBefore);
  });
});

describe('stop()', () => {
  test('resolves, is safe twice, and leaves no tick unacked', async () => {
    assert.ok(agent !== undefined);
    await agent.stop();
    await agent.stop();
    // Unacked deliveries go back to ready once the agent's channel is closed.
    for (const served of [host, brokenHost]) assert.equal(await probe.messageCount(tickQueue(served)), 0, tickQueue(served));
  });
});
