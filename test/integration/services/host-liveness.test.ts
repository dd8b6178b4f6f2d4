/**
 * Host liveness on the real services, each its own process: three hosts, one agent each,
 * an audit subscriber recording reports, and two tick producers (one leads). A host whose
 * libvirt keeps failing becomes `failing`; a host whose agent is killed becomes
 * `unreachable` within HOST_UNREACHABLE_AFTER intervals; both recover to `healthy`, and
 * every transition is stored and published as `host.<host>.<state>`. Then the report path
 * (the audit subscriber) stops for several intervals: no host is declared unreachable, the
 * report path is `silent` instead. `virtsync status --problems` and both producers'
 * gauges say the same as the table.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Message } from 'amqplib';
import { Exchange, livenessRoutingKey } from '../../../shared/bus/topology.ts';
import { listHostLiveness, listPipelineHealth } from '../../../shared/db/host-liveness.ts';
import { parseMessage } from '../../../shared/messages/codec.ts';
import { type HostLiveness, hostLivenessSchema, type LivenessState } from '../../../shared/messages/host-liveness.ts';
import { type ServiceName, type ServiceProcess, startServiceProcess } from '../../../tools/demo/service-process.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { runCli } from '../../helpers/cli-process.ts';
import { createLibvirtHosts, type LibvirtHosts } from '../../helpers/libvirt-host.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

const INTERVAL_MS = 1_500;
const UNREACHABLE_AFTER = 3;
const suffix = randomBytes(3).toString('hex');
const [steady, killed, sick] = ['steady', 'killed', 'sick'].map((name) => `lv-${name}-${suffix}`) as [string, string, string];
const HOSTS = [steady, killed, sick];

let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let libvirt: LibvirtHosts;
let logDir: string;
const processes = new Map<string, ServiceProcess>();
const ports = new Map<string, number>();
let transitions: Message[] = [];

function start(service: ServiceName, instance: string, env: Record<string, string>): ServiceProcess {
  const child = startServiceProcess({
    service,
    instance,
    env: { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, LOG_LEVEL: 'info', ...env },
    logDir,
    onLogLine: (entry) => {
      if (entry.msg === 'http server listening') ports.set(instance, Number(entry.port));
    },
  });
  processes.set(instance, child);
  return child;
}

const startAgent = (host: string): ServiceProcess =>
  start('sync-agent', `agent-${host}`, { AGENT_HOSTS: host, LIBVIRT_URI: libvirt.uriTemplate, AGENT_LIFECYCLE_EVENTS: 'false', BREAKER_RESET_MS: '2000' });
const startAudit = (): ServiceProcess => start('audit-subscriber', 'audit', {});

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  libvirt = await createLibvirtHosts();
  logDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-liveness-'));
  transitions = await probe.collect(Exchange.reports, 'host.#');
  await database.db.insertInto('compute_hosts').values(HOSTS.map((host) => ({ host }))).execute();
  for (const host of HOSTS) await libvirt.write(host, []);
  // The sick host's libvirt cannot be opened until its node file comes back.
  const sickFile = path.join(libvirt.dir, `${sick}.xml`);
  await rename(sickFile, `${sickFile}.away`);

  startAudit();
  for (const host of HOSTS) startAgent(host);
  for (const name of ['p1', 'p2']) {
    start('tick-producer', name, {
      TICK_INTERVAL_MS: String(INTERVAL_MS),
      HOST_FAILING_AFTER: '2',
      HOST_UNREACHABLE_AFTER: String(UNREACHABLE_AFTER),
    });
  }
});

after(async () => {
  await Promise.all([...processes.values()].map((child) => child.stop()));
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
  await libvirt?.remove();
  if (logDir !== undefined) await rm(logDir, { recursive: true, force: true });
});

function published(): Array<{ routingKey: string; message: HostLiveness }> {
  return transitions.map((delivery) => {
    const parsed = parseMessage(hostLivenessSchema, delivery.content);
    if (!parsed.ok) assert.fail(`invalid host-liveness message: ${parsed.reason}`);
    return { routingKey: delivery.fields.routingKey, message: parsed.value };
  });
}

const publishedTo = (host: string, state: LivenessState) => published().filter(({ message }) => message.host === host && message.state === state);

async function states(): Promise<Record<string, LivenessState>> {
  return Object.fromEntries((await listHostLiveness(database.db)).map((view) => [view.host, view.state]));
}

async function metricsOf(instance: string): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${ports.get(instance)}/metrics`);
  return response.text();
}

const cliEnv = (): Record<string, string> => ({ DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl });

test('a host whose libvirt keeps failing becomes failing, and the transition is published', { timeout: 90_000 }, async () => {
  await waitFor('the sick host to be failing', async () => (await states())[sick] === 'failing', { timeoutMs: 60_000, intervalMs: 200 });
  await waitFor('its transition to be published', () => publishedTo(sick, 'failing').length >= 1, { timeoutMs: 10_000 });
  const [{ routingKey, message }] = publishedTo(sick, 'failing') as [{ routingKey: string; message: HostLiveness }];
  assert.equal(routingKey, livenessRoutingKey(sick, 'failing'));
  assert.equal(message.previousState, 'healthy');
  assert.ok(message.consecutiveFailures >= 2, `${message.consecutiveFailures} failures`);
  assert.equal((await states())[steady], 'healthy');
});

test('a killed agent makes its host unreachable within the configured intervals', { timeout: 60_000 }, async (t) => {
  await waitFor('the killed host to have reported', async () => (await states())[killed] === 'healthy', { timeoutMs: 20_000 });
  const killedAtMs = Date.now();
  await processes.get(`agent-${killed}`)?.kill('SIGKILL');
  await waitFor('the unreachable transition', () => publishedTo(killed, 'unreachable').length >= 1, { timeoutMs: 30_000, intervalMs: 100 });
  const tookMs = Date.now() - killedAtMs;
  // Silent for the limit, plus at most one interval until the next evaluation and one for the last report before the kill.
  const boundMs = (UNREACHABLE_AFTER + 2) * INTERVAL_MS;
  t.diagnostic(`unreachable published ${tookMs} ms after the kill (bound ${boundMs} ms)`);
  assert.ok(tookMs <= boundMs, `unreachable after ${tookMs} ms, more than ${boundMs} ms`);
  assert.deepEqual(await states(), { [steady]: 'healthy', [killed]: 'unreachable', [sick]: 'failing' });
  assert.deepEqual((await listPipelineHealth(database.db)).map((row) => [row.component, row.state]), [['report-path', 'ok']]);

  const problems = await runCli(['status', '--problems', '--json'], cliEnv());
  assert.equal(problems.code, 1, problems.stderr);
  const listed = JSON.parse(problems.stdout).problems.map((p: { subject: string; problem: string }) => `${p.subject} ${p.problem}`).sort();
  // The sick host never synced: overdue as well. The killed one synced minutes ago: not overdue yet.
  assert.deepEqual(listed, [`${killed} unreachable`, `${sick} failing`, `${sick} overdue`].sort());
  const readable = await runCli(['status'], cliEnv());
  assert.match(readable.stdout, new RegExp(`${killed} .*UNREACHABLE`));

  // Both producers, leader and standby, export the same gauges from the table.
  await waitFor('both producers to export the states', async () => {
    const texts = await Promise.all(['p1', 'p2'].map(metricsOf));
    return texts.every(
      (text) =>
        text.includes('virtsync_hosts{liveness="unreachable"} 1') &&
        text.includes('virtsync_hosts{liveness="failing"} 1') &&
        text.includes('virtsync_hosts{liveness="healthy"} 1') &&
        text.includes(`virtsync_host_last_successful_sync_timestamp_seconds{host="${steady}"}`),
    );
  }, { timeoutMs: 15_000, intervalMs: 250 });
});

test('both recover to healthy and publish the transitions', { timeout: 90_000 }, async () => {
  const sickFile = path.join(libvirt.dir, `${sick}.xml`);
  await rename(`${sickFile}.away`, sickFile);
  startAgent(killed);
  await waitFor('every host healthy', async () => Object.values(await states()).every((state) => state === 'healthy'), { timeoutMs: 60_000, intervalMs: 200 });
  await waitFor('the recoveries published', () => publishedTo(killed, 'healthy').length >= 1 && publishedTo(sick, 'healthy').length >= 1, { timeoutMs: 10_000 });
  assert.equal(publishedTo(killed, 'healthy')[0]?.message.previousState, 'unreachable');
  assert.equal(publishedTo(sick, 'healthy')[0]?.message.previousState, 'failing');

  const stored = await database.db.selectFrom('host_liveness_transitions').select(['transition_id', 'published_at']).execute();
  assert.equal(stored.length, new Set(published().map(({ message }) => message.transitionId)).size, 'every stored transition published');
  assert.ok(stored.every((row) => row.published_at !== null));
  const clean = await runCli(['status', '--problems'], cliEnv());
  assert.equal(clean.code, 0, clean.stdout + clean.stderr);
  assert.match(clean.stdout, /no problems/);
});

test('the report path stopped for several intervals declares no host unreachable', { timeout: 90_000 }, async () => {
  const before = published().length;
  await processes.get('audit')?.stop();
  const stoppedAtMs = Date.now();
  let sawSilent = false;
  // Twice the unreachable limit, checking all along that nobody is declared unreachable.
  while (Date.now() - stoppedAtMs < 2 * (UNREACHABLE_AFTER + 1) * INTERVAL_MS) {
    const now = await states();
    assert.ok(Object.values(now).every((state) => state !== 'unreachable'), `declared unreachable: ${JSON.stringify(now)}`);
    sawSilent ||= (await listPipelineHealth(database.db)).some((row) => row.component === 'report-path' && row.state === 'silent');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.ok(sawSilent, 'the report path was judged silent');
  assert.deepEqual(published().slice(before).filter(({ message }) => message.state === 'unreachable'), []);
  const problems = await runCli(['status', '--problems'], cliEnv());
  assert.equal(problems.code, 1);
  assert.match(problems.stdout, /pipeline:report-path +silent/);
  assert.match(await metricsOf('p1'), /virtsync_report_path_silent 1/);

  startAudit();
  await waitFor('the report path to be ok again', async () =>
    (await listPipelineHealth(database.db)).every((row) => row.state === 'ok'), { timeoutMs: 60_000, intervalMs: 200 });
  assert.ok(Object.values(await states()).every((state) => state === 'healthy'));
});
