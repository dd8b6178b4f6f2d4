/**
 * Lifecycle events end to end on a real libvirtd: a change made through another libvirt
 * connection reaches the changes exchange without any tick, a quick stop + start is
 * debounced into nothing, and a domain no row knows is reported as unknown.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Message } from 'amqplib';
import { connectBus } from '../../../../shared/bus/connect.ts';
import { eventObservationRoutingKey, Exchange, observationRoutingKey } from '../../../../shared/bus/topology.ts';
import { loadConfig, stateWriterEnv, syncAgentEnv } from '../../../../shared/config.ts';
import { changeEventSchema } from '../../../../shared/messages/change-event.ts';
import { parseMessage } from '../../../../shared/messages/codec.ts';
import { hostObservationsSchema } from '../../../../shared/messages/observation.ts';
import { unknownDomainSchema } from '../../../../shared/messages/unknown-domain.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { type RunningService, startService } from '../../../../shared/service-runner.ts';
import { stateWriter } from '../../../../services/state-writer/state-writer.ts';
import { syncAgent } from '../../../../services/sync-agent/sync-agent.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { openBusProbe, type BusProbe } from '../../../helpers/bus-probe.ts';
import { type DaemonDomains, ensureLibvirtd, LIBVIRTD_URI, openDaemonDomains } from '../../../../tools/local-env/libvirtd.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';
import { testLogger } from '../../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../../tools/local-env/vhost.ts';

const suffix = randomBytes(3).toString('hex');
const host = `events-${suffix}`;
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let domains: DaemonDomains;
let changes: Message[];
let unknown: Message[];
/** Everything published under the host's observation keys: a host sync's, and a lifecycle event's. */
let tickKeyed: Message[];
let eventKeyed: Message[];
const services: RunningService[] = [];
const buses: Array<{ close(): Promise<void> }> = [];
const uuids: Record<'paused' | 'rebooted' | 'marker', string> = { paused: '', rebooted: '', marker: '' };
let stray: string;

before(async () => {
  await ensureLibvirtd();
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  domains = await openDaemonDomains();
  for (const key of Object.keys(uuids) as Array<keyof typeof uuids>) uuids[key] = await domains.start(`vs-${key}-${suffix}`);
  await database.db
    .insertInto('instances')
    .values(Object.values(uuids).map((uuid) => ({ uuid, host, power_state: PowerState.RUNNING, vm_state: 'active' })))
    .execute();
  changes = await probe.collect(Exchange.changes, 'instance.#');
  unknown = await probe.collect(Exchange.reports, `unknown.${host}`);
  tickKeyed = await probe.collect(Exchange.observations, observationRoutingKey(host));
  eventKeyed = await probe.collect(Exchange.observations, eventObservationRoutingKey(host));

  const env = { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl };
  const agentBus = connectBus({ url: vhost.amqpUrl, name: 'test agent', log: testLogger });
  const writerBus = connectBus({ url: vhost.amqpUrl, name: 'test writer', log: testLogger });
  buses.push(agentBus, writerBus);
  services.push(
    await startService(stateWriter, { config: loadConfig(stateWriterEnv, { ...env, WRITER_BATCH_LINGER_MS: '10' }), db: database.db, bus: writerBus, log: testLogger }),
    await startService(syncAgent, {
      config: loadConfig(syncAgentEnv, { ...env, AGENT_HOSTS: host, LIBVIRT_URI: LIBVIRTD_URI, EVENT_DEBOUNCE_MS: '300' }),
      db: database.db,
      bus: agentBus,
      log: testLogger,
    }),
  );
  // The event path is live once a stray domain's restart comes back as an unknown-domain event
  // (the agent's start-up sync may report it first, as a tick); until then, restart it again
  // (the watcher may not have registered for events yet).
  stray = await domains.start(`vs-stray-${suffix}`);
  const strayDomain = await domains.hypervisor.domainLookupByName(`vs-stray-${suffix}`);
  await waitFor(
    'the lifecycle watcher to report the stray domain',
    async () => {
      if (unknownFor(stray).some((event) => event.trigger === 'event' && event.powerState === PowerState.RUNNING)) return true;
      await domains.hypervisor.domainDestroy(strayDomain);
      await domains.hypervisor.domainCreate(strayDomain);
      return false;
    },
    { timeoutMs: 15_000, intervalMs: 1_000 },
  );
});

after(async () => {
  for (const service of services) await service.stop();
  for (const bus of buses) await bus.close();
  await domains?.removeAll();
  await domains?.close();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
});

function unknownFor(uuid: string) {
  return unknown
    .map((message) => parseMessage(unknownDomainSchema, message.content))
    .flatMap((parsed) => (parsed.ok && parsed.value.instanceUuid === uuid ? [parsed.value] : []));
}

function triggersOf(messages: readonly Message[]) {
  return messages.map((message) => parseMessage(hostObservationsSchema, message.content)).flatMap((parsed) => (parsed.ok ? [parsed.value.trigger] : ['invalid']));
}

function changesFor(uuid: string) {
  return changes
    .map((message) => parseMessage(changeEventSchema, message.content))
    .flatMap((parsed) => (parsed.ok && parsed.value.instanceUuid === uuid ? [parsed.value] : []));
}

test('a domain paused behind the cloud\'s back is committed from its lifecycle event, no tick needed', async () => {
  await domains.hypervisor.domainSuspend(await domains.hypervisor.domainLookupByName(`vs-paused-${suffix}`));
  await waitFor('the PAUSED change event', () => changesFor(uuids.paused).length > 0, { timeoutMs: 10_000 });
  const [change] = changesFor(uuids.paused);
  assert.equal(change?.after.powerState, PowerState.PAUSED);
  assert.equal(change?.rule, 'power-only');
  const row = await database.db.selectFrom('instances').select(['power_state', 'vm_state']).where('uuid', '=', uuids.paused).executeTakeFirstOrThrow();
  assert.deepEqual(row, { power_state: PowerState.PAUSED, vm_state: 'active' });
  // The observation that made the change travelled under the key of its trigger (the start-up sync, a
  // tick-triggered look, may get there before the event): event looks under the event key only.
  const carrier = (messages: readonly Message[]) => messages.some((message) => message.content.toString().includes(change?.observationId ?? 'none'));
  assert.ok(carrier(eventKeyed) || carrier(tickKeyed), 'the change came from an observation published under the host\'s keys');
  assert.ok(triggersOf(eventKeyed).every((trigger) => trigger === 'event'));
  assert.ok(triggersOf(tickKeyed).every((trigger) => trigger !== 'event'));
});

test('a quick stop + start (a reboot) is debounced: no SHUTOFF is published in between', async () => {
  const rebooted = await domains.hypervisor.domainLookupByName(`vs-rebooted-${suffix}`);
  await domains.hypervisor.domainDestroy(rebooted);
  await domains.hypervisor.domainCreate(rebooted);
  // A later change to another domain: once its event is through, the reboot's settled long before.
  await domains.hypervisor.domainSuspend(await domains.hypervisor.domainLookupByName(`vs-marker-${suffix}`));
  await waitFor('the marker change event', () => changesFor(uuids.marker).length > 0, { timeoutMs: 10_000 });
  assert.deepEqual(changesFor(uuids.rebooted), []);
});

test('a domain no row knows is reported as unknown on its own routing key, and never written', async () => {
  const reported = unknownFor(stray);
  assert.ok(reported.some((event) => event.trigger === 'event' && event.powerState === PowerState.RUNNING));
  assert.deepEqual(new Set(reported.map((event) => event.host)), new Set([host]));
  const row = await database.db.selectFrom('instances').select('uuid').where('uuid', '=', stray).executeTakeFirst();
  assert.equal(row, undefined);
});
