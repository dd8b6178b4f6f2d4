/**
 * The operator's window, on real service processes: /healthz, /readyz (unready while the
 * broker connection is gone, ready again after the reconnect) and /metrics with the
 * right values after a host sync and a writer batch.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Exchange, Queue, tickQueue } from '../../../shared/bus/topology.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { type ServiceProcess, startServiceProcess } from '../../../tools/demo/service-process.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { createLibvirtHosts, type LibvirtHosts } from '../../helpers/libvirt-host.ts';
import { queueConsumers } from '../../helpers/queue-consumers.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

const host = `obs-${randomBytes(3).toString('hex')}`;
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let libvirt: LibvirtHosts;
let logDir: string;
const services: Record<'agent' | 'writer', { process: ServiceProcess; port?: number }> = {} as never;
const drifted = Array.from({ length: 4 }, () => randomUUID());
const inSync = Array.from({ length: 3 }, () => randomUUID());

async function get(service: keyof typeof services, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${services[service].port}${path}`);
  return { status: response.status, body: await response.text() };
}

/** The value of one sample line, e.g. metric('virtsync_writer_decisions_total{rule="stopped"}'). */
function metric(text: string, sample: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  libvirt = await createLibvirtHosts();
  logDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-obs-'));
  await libvirt.write(host, [
    ...drifted.map((uuid) => ({ uuid, state: PowerState.SHUTOFF })),
    ...inSync.map((uuid) => ({ uuid, state: PowerState.RUNNING })),
  ]);
  await database.db
    .insertInto('instances')
    .values([...drifted, ...inSync].map((uuid) => ({ uuid, host, power_state: PowerState.RUNNING, vm_state: 'active' })))
    .execute();
  const env = { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl };
  const start = (name: keyof typeof services, service: 'sync-agent' | 'state-writer', extra: Record<string, string>): void => {
    services[name] = {
      process: startServiceProcess({
        service,
        env: { ...env, ...extra },
        logDir,
        onLogLine: (entry) => {
          if (entry.msg === 'http server listening') services[name].port = Number(entry.port);
        },
      }),
    };
  };
  // No start-up sync: the metrics are counted for exactly the one tick the test sends.
  start('agent', 'sync-agent', { AGENT_HOSTS: host, LIBVIRT_URI: libvirt.uriTemplate, AGENT_LIFECYCLE_EVENTS: 'false', AGENT_STARTUP_SYNC: 'false' });
  start('writer', 'state-writer', { WRITER_BATCH_LINGER_MS: '20' });
  await waitFor('both HTTP servers', () => services.agent.port !== undefined && services.writer.port !== undefined, { timeoutMs: 20_000 });
  await waitFor('both services ready', async () => (await get('agent', '/readyz')).status === 200 && (await get('writer', '/readyz')).status === 200, {
    timeoutMs: 20_000,
  });
  // Ready is not yet consuming: a tick published before the agent binds its queue would be dropped.
  await waitFor('the agent consuming its tick queue', async () => (await queueConsumers(vhost.amqpUrl, tickQueue(host))) > 0, { timeoutMs: 20_000 });
});

after(async () => {
  for (const { process } of Object.values(services)) await process?.stop();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
  await libvirt?.remove();
  if (logDir !== undefined) await rm(logDir, { recursive: true, force: true });
});

describe('health endpoints', () => {
  test('/healthz answers ok and /readyz names its checks', async () => {
    assert.deepEqual(JSON.parse((await get('writer', '/healthz')).body), { status: 'ok' });
    const ready = JSON.parse((await get('writer', '/readyz')).body);
    assert.deepEqual(ready, { status: 'ready', checks: { broker: true, database: true, databaseQuery: true, writes: true, running: true } });
    assert.equal((await get('writer', '/nope')).status, 404);
  });
});

describe('metrics after a cycle', () => {
  test('the agent counts what it compared and published; the writer what it decided and committed', async () => {
    probe.publish(Exchange.ticks, host, {
      schemaVersion: 1,
      tickId: randomUUID(),
      host,
      cycle: 0,
      scheduledAt: new Date().toISOString(),
      trigger: 'manual',
    });
    await waitFor('the drift committed', async () => {
      const rows = await database.db.selectFrom('instances').select('uuid').where('power_state', '=', PowerState.SHUTOFF).execute();
      return rows.length === drifted.length && (await probe.messageCount(Queue.stateWriter)) === 0;
    }, { timeoutMs: 20_000 });

    await waitFor('the writer metrics', async () => metric((await get('writer', '/metrics')).body, 'virtsync_outbox_backlog') === 0, { timeoutMs: 10_000 });
    const agent = (await get('agent', '/metrics')).body;
    assert.equal(metric(agent, 'virtsync_instances_compared_total'), drifted.length + inSync.length);
    assert.equal(metric(agent, 'virtsync_discrepancies_found_total{kind="drifted"}'), drifted.length);
    assert.equal(metric(agent, 'virtsync_observations_published_total{trigger="tick"}'), drifted.length);
    // No host label on a histogram: a fleet of agents would multiply its buckets by the hosts.
    assert.equal(metric(agent, 'virtsync_host_sync_duration_seconds_count{outcome="synced"}'), 1);
    assert.equal(metric(agent, `virtsync_breaker_state{breaker="libvirt",host="${host}"}`), 0);

    const writer = (await get('writer', '/metrics')).body;
    assert.equal(metric(writer, 'virtsync_writer_decisions_total{rule="stopped"}'), drifted.length);
    assert.equal(metric(writer, 'virtsync_changes_committed_total{power_state="shutoff"}'), drifted.length);
    // The host's drift travels as one message.
    assert.equal(metric(writer, `virtsync_messages_consumed_total{queue="${Queue.stateWriter}"}`), 1);
    assert.equal(metric(writer, 'virtsync_breaker_state{breaker="database",host=""}'), 0);
    assert.ok((metric(writer, 'virtsync_writer_batch_size_count') ?? 0) >= 1);
    // RUNNING rows of ACTIVE instances found shut off, no operation of the cloud in progress.
    assert.equal(metric(writer, 'virtsync_unexpected_stops_total{power_state="shutoff"}'), drifted.length);
    assert.equal(metric(writer, 'virtsync_instances{power_state="shutoff",vm_state="shutoff"}'), drifted.length);
    assert.equal(metric(writer, 'virtsync_instances{power_state="running",vm_state="active"}'), inSync.length);
    assert.equal(metric(writer, `virtsync_queue_messages{queue="${Queue.stateWriter}"}`), 0);
  });

  test('each service serves its own metrics, the standard process metrics and its build', async () => {
    const agent = (await get('agent', '/metrics')).body;
    const writer = (await get('writer', '/metrics')).body;
    for (const [service, text] of [['sync-agent', agent], ['state-writer', writer]] as const) {
      assert.match(text, /^process_cpu_seconds_total /m, service);
      assert.match(text, /^nodejs_heap_size_used_bytes /m, service);
      assert.doesNotMatch(text, /^virtsync_process_/m, service);
      assert.match(text, new RegExp(`^virtsync_build_info\\{version="[^"]+",service="${service}",nodejs_version="v[^"]+"\\} 1$`, 'm'));
    }
    assert.doesNotMatch(writer, /virtsync_tick_producer_leader|virtsync_host_sync_duration_seconds|virtsync_ticks_published_total/);
    assert.doesNotMatch(agent, /virtsync_tick_producer_leader|virtsync_writer_|virtsync_outbox_backlog/);
  });
});

describe('readiness follows the broker connection', () => {
  test('/readyz turns unready when RabbitMQ closes the connections and ready again after the reconnect', async () => {
    // The management API lists a new connection a few seconds late: wait until it sees ours.
    let closed = 0;
    let sawUnready = false;
    let reason: unknown;
    await waitFor('connections closed by the broker', async () => (closed += await vhost.closeConnections()) >= 2, { timeoutMs: 20_000, intervalMs: 500 });
    await waitFor('the writer to notice', async () => {
      const { status, body } = await get('writer', '/readyz');
      const parsed = JSON.parse(body);
      if (status === 503 && parsed.checks.broker === false) {
        sawUnready = true;
        reason = parsed.reasons?.broker;
      }
      return sawUnready;
    }, { timeoutMs: 10_000, intervalMs: 20 });
    await waitFor('the writer ready again', async () => (await get('writer', '/readyz')).status === 200, { timeoutMs: 20_000 });
    // An outage, not a refusal: the reason says so (a refused login or vhost would say that instead).
    assert.equal(typeof reason, 'string');
    assert.doesNotMatch(String(reason), /refused the (credentials|vhost)/);
    assert.ok((metric((await get('writer', '/metrics')).body, 'virtsync_broker_disconnects_total') ?? 0) >= 1);
  });
});
