/**
 * virtsync as Prometheus sees it: the four services of a running cycle (separate processes,
 * real PostgreSQL, RabbitMQ, libvirt test driver) scraped by a real Prometheus (Debian's
 * package) with virtsync's rules loaded. Every target is up; every metric the Grafana
 * dashboard reads is exposed after a cycle and every dashboard query runs; killing a host's
 * agent fires VirtsyncServiceDown for that agent, and starting it again resolves it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { type ServiceName, type ServiceProcess, startServiceProcess } from '../../tools/demo/service-process.ts';
import { DEFAULT_FLEET, type FleetPlan, planFleet } from '../../tools/fleet/fleet-plan.ts';
import { fleetLibvirtUri, insertFleetRows, writeNodeXmlFiles } from '../../tools/fleet/write-fleet.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { freePort, type PrometheusServer, shortenedRules, startPrometheus } from '../helpers/prometheus-server.ts';
import { exposedNames, metricNamesIn } from '../helpers/promql-names.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/test-database.ts';
import { createTestVhost, type TestVhost } from '../../tools/local-env/vhost.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RULES = path.join(ROOT, 'infra/prometheus/virtsync-rules.yaml');
const DASHBOARD = path.join(ROOT, 'infra/grafana/virtsync.json');
/** Series Prometheus makes itself for each target. */
const PROMETHEUS_OWN = new Set(['up']);

interface Running {
  service: ServiceName;
  port: number;
  env: Record<string, string>;
  process: ServiceProcess;
}

let database: TestDatabase;
let vhost: TestVhost;
let workDir: string;
let plan: FleetPlan;
let prometheus: PrometheusServer;
const running = new Map<string, Running>();

function start(name: string, service: ServiceName, env: Record<string, string>, port: number): Running {
  const fullEnv = { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, HTTP_PORT: String(port), ...env };
  const entry = { service, port, env: fullEnv, process: startServiceProcess({ service, instance: name, env: fullEnv, logDir: workDir }) };
  running.set(name, entry);
  return entry;
}

async function metricsOf(name: string): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${running.get(name)?.port}/metrics`);
  return response.text();
}

const alertsSchema = z.object({ alerts: z.array(z.object({ labels: z.record(z.string(), z.string()), state: z.string() })) });
async function firing(alertname: string): Promise<Array<Record<string, string>>> {
  const { alerts } = alertsSchema.parse(await prometheus.api('alerts'));
  return alerts.filter((alert) => alert.state === 'firing' && alert.labels.alertname === alertname).map((alert) => alert.labels);
}

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  workDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-prom-e2e-'));
  plan = planFleet({ ...DEFAULT_FLEET, hosts: 2, minVmsPerHost: 6, maxVmsPerHost: 10, seed: 11, hostPrefix: `prom-${randomBytes(3).toString('hex')}` });
  await insertFleetRows(database.db, plan);
  await writeNodeXmlFiles(plan, path.join(workDir, 'fleet'));
  const libvirt = { LIBVIRT_URI: fleetLibvirtUri(path.join(workDir, 'fleet')) };

  start('tick-producer', 'tick-producer', { TICK_INTERVAL_MS: '4000' }, await freePort());
  start('state-writer', 'state-writer', { WRITER_BATCH_LINGER_MS: '20' }, await freePort());
  start('audit-subscriber', 'audit-subscriber', {}, await freePort());
  for (const [index, host] of plan.hosts.entries()) start(`agent-${index}`, 'sync-agent', { AGENT_HOSTS: host, ...libvirt }, await freePort());

  const targetsOf = (service: ServiceName): string[] => [...running.values()].filter((r) => r.service === service).map((r) => `127.0.0.1:${r.port}`);
  prometheus = await startPrometheus({
    jobs: Object.fromEntries((['tick-producer', 'sync-agent', 'state-writer', 'audit-subscriber'] as const).map((s) => [`virtsync-${s}`, targetsOf(s)])),
    rules: await shortenedRules(RULES, 2),
  });
});

after(async () => {
  await prometheus?.close();
  for (const { process } of running.values()) await process.stop();
  await vhost?.delete();
  await database?.drop();
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
});

const targetsSchema = z.object({ activeTargets: z.array(z.object({ labels: z.record(z.string(), z.string()), health: z.string(), lastError: z.string() })) });

test('Prometheus scrapes every service of the cycle and finds it up', async () => {
  let last = '';
  await waitFor('every target up', async () => {
    const { activeTargets } = targetsSchema.parse(await prometheus.api('targets'));
    last = JSON.stringify(activeTargets.map((t) => [t.labels.job, t.labels.instance, t.health, t.lastError]));
    return activeTargets.length === running.size && activeTargets.every((t) => t.health === 'up');
  }, { timeoutMs: 60_000, intervalMs: 500 }).catch((err: unknown) => assert.fail(`${String(err)}: ${last}`));
});

describe('the Grafana dashboard', () => {
  const dashboardSchema = z.object({ panels: z.array(z.object({ title: z.string(), targets: z.array(z.object({ expr: z.string() })) })) });
  const rulesSchema = z.object({ groups: z.array(z.object({ rules: z.array(z.looseObject({ record: z.string().optional(), expr: z.string() })) })) });

  test('every metric its queries read is exposed by a service after a cycle', async () => {
    // A cycle: every host synced and its drift committed by the writer.
    await waitFor('a committed batch and a consumed audit event', async () => {
      const writer = await metricsOf('state-writer');
      const audit = await metricsOf('audit-subscriber');
      return /^virtsync_writer_batch_size_count [1-9]/m.test(writer) && /^virtsync_messages_consumed_total\{[^}]*\} [1-9]/m.test(audit);
    }, { timeoutMs: 60_000, intervalMs: 500 });
    const exposed = new Set<string>();
    for (const name of running.keys()) for (const metric of exposedNames(await metricsOf(name))) exposed.add(metric);

    const recorded = new Map(
      rulesSchema.parse((await import('yaml')).parse(await readFile(RULES, 'utf8'))).groups.flatMap((g) => g.rules.flatMap((r) => (r.record === undefined ? [] : [[r.record, r.expr] as const]))),
    );
    const dashboard = dashboardSchema.parse(JSON.parse(await readFile(DASHBOARD, 'utf8')));
    const missing: string[] = [];
    const check = (name: string, where: string): void => {
      const rule = recorded.get(name);
      if (rule !== undefined) return metricNamesIn(rule).forEach((source) => check(source, `${where} via ${name}`));
      if (!exposed.has(name) && !PROMETHEUS_OWN.has(name)) missing.push(`${name} (${where})`);
    };
    for (const panel of dashboard.panels) for (const { expr } of panel.targets) for (const name of metricNamesIn(expr)) check(name, panel.title);
    assert.ok(dashboard.panels.length >= 10);
    assert.deepEqual(missing, []);
  });

  test('every dashboard query runs on Prometheus', async () => {
    const dashboard = dashboardSchema.parse(JSON.parse(await readFile(DASHBOARD, 'utf8')));
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) await prometheus.api(`query?query=${encodeURIComponent(expr)}`).catch((err: unknown) => assert.fail(`${panel.title}: ${expr}: ${String(err)}`));
    }
  });
});

test('killing a host agent fires VirtsyncServiceDown for it; starting it again resolves the alert', async (t) => {
  const agent = running.get('agent-0');
  assert.ok(agent !== undefined);
  const instance = `127.0.0.1:${agent.port}`;
  // Precondition: nothing down (a slow scrape on a loaded machine counts as down until the next one).
  await waitFor('no VirtsyncServiceDown before the kill', async () => (await firing('VirtsyncServiceDown')).length === 0, { timeoutMs: 60_000, intervalMs: 500 });

  const killedAt = Date.now();
  await agent.process.kill('SIGKILL');
  await waitFor('VirtsyncServiceDown firing', async () => (await firing('VirtsyncServiceDown')).length > 0, { timeoutMs: 60_000, intervalMs: 500 });
  t.diagnostic(`VirtsyncServiceDown firing ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (scrape every 2 s, evaluation every 1 s, for: 2s)`);
  assert.deepEqual(await firing('VirtsyncServiceDown'), [{ alertname: 'VirtsyncServiceDown', instance, job: 'virtsync-sync-agent', severity: 'critical' }]);

  const restartedAt = Date.now();
  start('agent-0', 'sync-agent', agent.env, agent.port);
  await waitFor('VirtsyncServiceDown resolved', async () => (await firing('VirtsyncServiceDown')).length === 0, { timeoutMs: 60_000, intervalMs: 500 });
  t.diagnostic(`VirtsyncServiceDown resolved ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after the restart`);
  const { activeTargets } = targetsSchema.parse(await prometheus.api('targets'));
  assert.ok(activeTargets.every((t) => t.health === 'up'));
});
