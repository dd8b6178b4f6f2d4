/**
 * A burst of lifecycle events on one host, end to end on a libvirtd of the test's own: many
 * domains destroyed at once are all committed, served by bulk reads of the host (the agent
 * logs each batch), a domain in the burst that no row places on the host is reported as
 * unknown by the same path, and transient domains that vanished with the burst are reported
 * nowhere. The agent and the writer are the real services.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Hypervisor } from '@unraid/libvirt';
import type { Message } from 'amqplib';
import { connectBus } from '../../../../shared/bus/connect.ts';
import { Exchange } from '../../../../shared/bus/topology.ts';
import { loadConfig, stateWriterEnv, syncAgentEnv } from '../../../../shared/config.ts';
import { changeEventSchema } from '../../../../shared/messages/change-event.ts';
import { parseMessage } from '../../../../shared/messages/codec.ts';
import { unknownDomainSchema } from '../../../../shared/messages/unknown-domain.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { type RunningService, startService } from '../../../../shared/service-runner.ts';
import { stateWriter } from '../../../../services/state-writer/state-writer.ts';
import { BULK_FROM } from '../../../../services/sync-agent/event-coalescer.ts';
import { syncAgent } from '../../../../services/sync-agent/sync-agent.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { openBusProbe, type BusProbe } from '../../../helpers/bus-probe.ts';
import { type PrivateLibvirtd, startPrivateLibvirtd } from '../../../../tools/local-env/private-libvirtd.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';
import { captureLogger, testLogger } from '../../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../../tools/local-env/vhost.ts';

const BURST = 40;
const suffix = randomBytes(3).toString('hex');
const host = `burst-${suffix}`;
let daemon: PrivateLibvirtd;
let hypervisor: Hypervisor;
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let changes: Message[];
let unknown: Message[];
const agentLogs = captureLogger();
const services: RunningService[] = [];
const buses: Array<{ close(): Promise<void> }> = [];

const domainXml = (name: string, uuid: string): string =>
  `<domain type="test"><name>${name}</name><uuid>${uuid}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;

async function startDomain(name: string): Promise<string> {
  const uuid = randomUUID();
  await hypervisor.domainCreate(await hypervisor.domainDefineXML(domainXml(name, uuid)));
  return uuid;
}

function eventsFor<T>(messages: Message[], parse: (content: Buffer) => { ok: true; value: T } | { ok: false }): T[] {
  return messages.flatMap((message) => {
    const parsed = parse(message.content);
    return parsed.ok ? [parsed.value] : [];
  });
}

before(async () => {
  daemon = await startPrivateLibvirtd();
  hypervisor = new Hypervisor({ uri: daemon.uri });
  await hypervisor.connectOpen();
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  changes = await probe.collect(Exchange.changes, 'instance.#');
  unknown = await probe.collect(Exchange.reports, `unknown.${host}`);
  const env = { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl };
  const agentBus = connectBus({ url: vhost.amqpUrl, name: 'test agent', log: testLogger });
  const writerBus = connectBus({ url: vhost.amqpUrl, name: 'test writer', log: testLogger });
  buses.push(agentBus, writerBus);
  services.push(
    await startService(stateWriter, { config: loadConfig(stateWriterEnv, { ...env, WRITER_BATCH_LINGER_MS: '10' }), db: database.db, bus: writerBus, log: testLogger }),
    await startService(syncAgent, {
      // No start-up sync: at a random moment of its first 5 s it would report the stray domain as a tick, racing the burst.
      config: loadConfig(syncAgentEnv, { ...env, AGENT_HOSTS: host, LIBVIRT_URI: daemon.uri, EVENT_DEBOUNCE_MS: '300', AGENT_STARTUP_SYNC: 'false' }),
      db: database.db,
      bus: agentBus,
      log: agentLogs.logger,
    }),
  );
});

after(async () => {
  for (const service of services) await service.stop();
  for (const bus of buses) await bus.close();
  await hypervisor?.connectClose().catch(() => undefined);
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
  await daemon?.remove();
});

test(`${BURST} domains destroyed at once are all committed through bulk reads; a stray one in the burst is reported unknown, vanished ones nothing`, async () => {
  const uuids = [];
  for (let i = 0; i < BURST; i++) uuids.push(await startDomain(`burst-${suffix}-${i}`));
  const strayUuid = await startDomain(`burst-${suffix}-stray`);
  await database.db
    .insertInto('instances')
    .values(uuids.map((uuid) => ({ uuid, host, power_state: PowerState.RUNNING, vm_state: 'active' })))
    .execute();
  // The watcher (virsh event) may need a moment to register: restart the stray one until its report comes.
  const stray = await hypervisor.domainLookupByName(`burst-${suffix}-stray`);
  await waitFor(
    'the lifecycle watcher to report the stray domain',
    async () => {
      if (unknown.length > 0) return true;
      await hypervisor.domainDestroy(stray);
      await hypervisor.domainCreate(stray);
      return false;
    },
    { timeoutMs: 20_000, intervalMs: 1_000 },
  );
  unknown.length = 0;
  // Transient domains without rows, destroyed first and well within the debounce of their start: libvirt
  // forgets them, so their settled events find them gone and nothing is reported.
  const transient = [];
  for (let i = 0; i < 3; i++) {
    const uuid = randomUUID();
    await hypervisor.domainCreateXML(domainXml(`burst-${suffix}-transient-${i}`, uuid));
    transient.push(uuid);
  }

  for (const uuid of [...transient, ...uuids, strayUuid]) await hypervisor.domainDestroy(await hypervisor.domainLookupByUUIDString(uuid));
  const stopped = (): Set<string> =>
    new Set(
      eventsFor(changes, (content) => parseMessage(changeEventSchema, content))
        .filter((change) => change.after.powerState === PowerState.SHUTOFF)
        .map((change) => change.instanceUuid),
    );
  await waitFor('every destroyed domain committed SHUTOFF', () => stopped().size === BURST, { timeoutMs: 20_000 });
  await waitFor('the stray domain reported again', () => unknown.length > 0, { timeoutMs: 10_000 });

  const strayReports = eventsFor(unknown, (content) => parseMessage(unknownDomainSchema, content));
  assert.ok(strayReports.length > 0 && strayReports.every((report) => report.instanceUuid === strayUuid && report.powerState === PowerState.SHUTOFF), JSON.stringify(strayReports));
  const rows = await database.db.selectFrom('instances').select(['power_state', 'vm_state']).where('host', '=', host).execute();
  assert.equal(rows.length, BURST);
  assert.ok(rows.every((row) => row.power_state === PowerState.SHUTOFF && row.vm_state === 'shutoff'), JSON.stringify(rows.slice(0, 3)));
  const batches = agentLogs.lines().filter((line) => line.includes('domains observed after lifecycle events'));
  assert.ok(batches.length >= 1, 'at least one bulk read served the burst');
  const batched = batches.reduce((sum, line) => sum + Number(/"domains":(\d+)/.exec(line)?.[1] ?? 0), 0);
  assert.ok(batched >= BULK_FROM, `bulk reads served ${batched} domains`);
});
