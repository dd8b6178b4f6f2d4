/**
 * A rolling upgrade done out of order: an agent of this release on a host whose broker user still
 * has the previous release's topic permission (only `observation.<host>`: `virtsync hosts add` not
 * re-run, docs/operations.md). The broker refuses its lifecycle event's observation and closes the
 * events' channel; the agent keeps its connection (host syncs go on) and sends that observation,
 * and every later one, under the tick key: the change is committed without waiting for a tick,
 * nothing is dead-lettered.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { syncAgent } from '../../../../services/sync-agent/sync-agent.ts';
import { connectBus, type BusConnection } from '../../../../shared/bus/connect.ts';
import { Exchange, observationRoutingKey, Queue } from '../../../../shared/bus/topology.ts';
import { loadConfig, stateWriterEnv, syncAgentEnv } from '../../../../shared/config.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { type RunningService, startService } from '../../../../shared/service-runner.ts';
import { stateWriter } from '../../../../services/state-writer/state-writer.ts';
import { createBrokerManagement } from '../../../../tools/provisioning/broker-management.ts';
import { LIBVIRTD_URI } from '../../../../tools/local-env/libvirtd.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { type DaemonRig, openDaemonRig } from '../../../helpers/daemon-rig.ts';
import { testLogger } from '../../../helpers/test-logger.ts';

const MANAGEMENT_URL = 'http://guest:guest@127.0.0.1:15672/api';
const suffix = randomBytes(3).toString('hex');
const host = `refused-${suffix}`;
const agentUser = `agent-${suffix}`;
const management = createBrokerManagement(MANAGEMENT_URL);
const connectionListSchema = z.array(z.object({ user: z.string(), connected_at: z.number() }));

let rig: DaemonRig;
let uuid: string;
const services: RunningService[] = [];
const buses: BusConnection[] = [];

/** When the agent user's newest connection to the test's vhost was opened (0: none open). */
async function agentConnectedAt(): Promise<number> {
  const response = await fetch(`http://127.0.0.1:15672/api/vhosts/${encodeURIComponent(rig.vhost.name)}/connections`, {
    headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
  });
  return Math.max(0, ...connectionListSchema.parse(await response.json()).filter((connection) => connection.user === agentUser).map((connection) => connection.connected_at));
}

async function powerState(): Promise<number | undefined> {
  return (await rig.database.db.selectFrom('instances').select('power_state').where('uuid', '=', uuid).executeTakeFirst())?.power_state;
}

before(async () => {
  rig = await openDaemonRig();
  const { database, vhost } = rig;
  uuid = await rig.domains.start(`vs-refused-${suffix}`);
  await database.db.insertInto('instances').values({ uuid, host, power_state: PowerState.RUNNING, vm_state: 'active' }).execute();
  // The previous release's grant: every resource, but on the observations exchange only the tick key.
  const vhostPath = encodeURIComponent(vhost.name);
  await management.put(`/users/${agentUser}`, { password: agentUser, tags: '' });
  await management.put(`/permissions/${vhostPath}/${agentUser}`, { configure: '.*', write: '.*', read: '.*' });
  await management.put(`/topic-permissions/${vhostPath}/${agentUser}`, { exchange: Exchange.observations, write: `^${observationRoutingKey(host)}$`, read: '.*' });

  const agentUrl = new URL(vhost.amqpUrl);
  agentUrl.username = agentUser;
  agentUrl.password = agentUser;
  const writerBus = connectBus({ url: vhost.amqpUrl, name: 'test writer', log: testLogger });
  const agentBus = connectBus({ url: agentUrl.toString(), name: 'test agent', log: testLogger });
  buses.push(writerBus, agentBus);
  const env = { DATABASE_URL: database.url };
  services.push(
    await startService(stateWriter, { config: loadConfig(stateWriterEnv, { ...env, AMQP_URL: vhost.amqpUrl, WRITER_BATCH_LINGER_MS: '10' }), db: database.db, bus: writerBus, log: testLogger }),
    await startService(syncAgent, {
      config: loadConfig(syncAgentEnv, { ...env, AMQP_URL: agentUrl.toString(), AGENT_HOSTS: host, LIBVIRT_URI: LIBVIRTD_URI, EVENT_DEBOUNCE_MS: '100', AGENT_STARTUP_SYNC: 'false' }),
      db: database.db,
      bus: agentBus,
      log: testLogger,
    }),
  );
});

after(async () => {
  for (const service of services) await service.stop();
  for (const bus of buses) await bus.close();
  await management.delete(`/users/${agentUser}`).catch(() => undefined);
  await rig?.close();
});

test('the event key refused: the connection stays, the event goes the old way and is committed, nothing dead-lettered', async () => {
  const { domains, probe } = rig;
  const vm = await domains.hypervisor.domainLookupByName(`vs-refused-${suffix}`);
  await waitFor('the agent connected', async () => (await agentConnectedAt()) > 0, { timeoutMs: 10_000, intervalMs: 200 });
  const connectedAt = await agentConnectedAt();
  // Suspend (again, if the watcher had not registered yet) until the pause is committed, with no tick.
  await waitFor(
    'the pause committed from its lifecycle event',
    async () => {
      if ((await powerState()) === PowerState.PAUSED) return true;
      await domains.hypervisor.domainResume(vm).catch(() => undefined);
      await domains.hypervisor.domainSuspend(vm).catch(() => undefined);
      return false;
    },
    { timeoutMs: 20_000, intervalMs: 1_000 },
  );
  assert.equal(await agentConnectedAt(), connectedAt, 'the agent kept its connection');
  assert.equal(await probe.messageCount(Queue.deadLetter), 0, 'nothing dead-lettered');
  assert.equal(await probe.messageCount(Queue.stateWriterEvents), 0, 'nothing reached the event queue');
});
