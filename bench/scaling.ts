/**
 * Scenario 5, the scaling curves (lighter than bench/fleet-cycle.ts: everything in this
 * process, no tick producer, no audit subscriber).
 *
 * - One host, 100 / 1,000 / 10,000 VMs: a host sync as the agent does it
 *   (readHostInstances + the hypervisor reader's one bulk read() + compareHost), median over
 *   the runs after warm-up; cost per VM at each size.
 * - A fleet of 10 / 100 / 1,000 hosts × 100 VMs, 10 % drift: one sync agent and one state
 *   writer (startSyncAgent, startStateWriter, each on its own broker connection and pool),
 *   every host's tick published at once by this process; timed from the burst to the last
 *   change event seen on virtsync.changes. A cold round opens the libvirt connections; the
 *   warm round (rows put back) is the figure.
 * Growth is called linear when a 10× larger input costs at most ~12× the time.
 *
 *   npm run bench:scaling
 */
import { publishTickBurst } from './lib/tick-burst.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import amqplib from 'amqplib';
import { type Kysely, sql } from 'kysely';
import { compareHost } from '../services/sync-agent/host-comparison.ts';
import { createLibvirtReader } from '../services/sync-agent/hypervisor-reader.ts';
import { stateWriter } from '../services/state-writer/state-writer.ts';
import { agentDatabaseConnections, syncAgent } from '../services/sync-agent/sync-agent.ts';
import { connectBus } from '../shared/bus/connect.ts';
import { declareCoreTopology, Exchange, Queue, tickQueue } from '../shared/bus/topology.ts';
import { loadConfig, stateWriterEnv, syncAgentEnv } from '../shared/config.ts';
import { createDatabase } from '../shared/db/connect.ts';
import type { Database } from '../shared/db/database.ts';
import { readHostInstances } from '../shared/db/instances.ts';
import { fleetLibvirtUri, nodeXmlPath } from '../tools/fleet/write-fleet.ts';
import { waitFor } from '../tools/wait-for.ts';
import { expectationsOf, planBenchFleet, restoreBenchFleet, writeBenchFleet } from './lib/bench-fleet.ts';
import { tapBus } from './lib/bus-tap.ts';
import { type BenchContext, runBench } from './lib/harness.ts';
import { benchLogger, createBenchDatabase, createBenchVhost } from './lib/resources.ts';
import { fmt, median } from './lib/stats.ts';
import { printTable } from './lib/table.ts';
import { waitForConsumers } from './lib/wait-for-consumers.ts';
import { startService } from '../shared/service-runner.ts';

const VMS_PER_HOST = [100, 1_000, 10_000] as const;
const HOST_COUNTS = [10, 100, 1_000] as const;
const FLEET_VMS = 100;
const DRIFT = 0.1;
const LINEAR_SLACK = 1.2;
const ROUND_TIMEOUT_MS = 90_000;

interface HostPoint {
  vms: number;
  runs: number;
  totalMs: number;
  rowsMs: number;
  libvirtMs: number;
}

interface FleetPoint {
  hosts: number;
  coldMs: number;
  warmMs: number;
  changes: number;
}

async function resetTables(db: Kysely<Database>): Promise<void> {
  await sql`truncate instances, instance_sync_state, compute_hosts, agent_logins, change_outbox, audit_log, host_sync_reports`.execute(db);
  await sql`drop table if exists bench_seed`.execute(db);
}

async function hostCurve(context: BenchContext, db: Kysely<Database>, workDir: string): Promise<HostPoint[]> {
  const points: HostPoint[] = [];
  for (const vms of VMS_PER_HOST) {
    await resetTables(db);
    const plan = planBenchFleet({ hosts: 1, vmsPerHost: vms, driftRatio: DRIFT, seed: 11, hostPrefix: `bench-vms${vms}` });
    const host = plan.hosts[0] as string;
    const dir = path.join(workDir, `vms-${vms}`);
    await writeBenchFleet(db, plan, dir);
    const reader = createLibvirtReader({ uri: `test://${nodeXmlPath(dir, host)}`, reconnectWaitMs: 0, log: benchLogger });
    const runs = vms >= 10_000 ? 7 : 20;
    const warmup = 2;
    const timings: Array<{ total: number; rows: number; libvirt: number }> = [];
    try {
      for (let i = 0; i < warmup + runs; i++) {
        const t0 = performance.now();
        const rows = await readHostInstances(db, host);
        const t1 = performance.now();
        const snapshot = await reader.read();
        const t2 = performance.now();
        compareHost(rows, snapshot);
        const t3 = performance.now();
        if (i >= warmup) timings.push({ total: t3 - t0, rows: t1 - t0, libvirt: t2 - t1 });
      }
    } finally {
      await reader.close();
    }
    points.push({
      vms,
      runs,
      totalMs: median(timings.map((t) => t.total)),
      rowsMs: median(timings.map((t) => t.rows)),
      libvirtMs: median(timings.map((t) => t.libvirt)),
    });
    context.progress(`one host, ${vms} VMs: ${fmt(points.at(-1)?.totalMs ?? 0, 1)} ms`);
  }
  return points;
}



async function fleetPoint(
  context: BenchContext,
  options: { db: Kysely<Database>; databaseUrl: string; amqpUrl: string; workDir: string; hosts: number },
): Promise<FleetPoint> {
  const { db, amqpUrl, hosts } = options;
  await resetTables(db);
  const plan = planBenchFleet({ hosts, vmsPerHost: FLEET_VMS, driftRatio: DRIFT, seed: 13, hostPrefix: `bench-scale${hosts}` });
  const expected = expectationsOf(plan);
  const dir = path.join(options.workDir, `fleet-${hosts}`);
  await writeBenchFleet(db, plan, dir);

  const purge = await amqplib.connect(amqpUrl);
  const purgeChannel = await purge.createChannel();
  await declareCoreTopology(purgeChannel);
  for (const queue of [Queue.stateWriter, Queue.auditSubscriber, Queue.hostReports]) await purgeChannel.purgeQueue(queue);
  await purge.close();

  const tap = await tapBus(amqpUrl, [
    { exchange: Exchange.changes, pattern: 'instance.#' },
    { exchange: Exchange.reports, pattern: 'report.#' },
  ]);
  const env = { DATABASE_URL: options.databaseUrl, AMQP_URL: amqpUrl };
  // No start-up sync: it would commit the drift before the tick burst the cycle is timed from.
  const agentConfig = loadConfig(syncAgentEnv, { ...env, AGENT_HOSTS: plan.hosts.join(','), LIBVIRT_URI: fleetLibvirtUri(dir), AGENT_LIFECYCLE_EVENTS: 'false', AGENT_STARTUP_SYNC: 'false' });
  const writerConfig = loadConfig(stateWriterEnv, env);
  const agentDb = createDatabase({ url: options.databaseUrl, log: benchLogger, maxConnections: agentDatabaseConnections(agentConfig) });
  const writerDb = createDatabase({ url: options.databaseUrl, log: benchLogger });
  const agentBus = connectBus({ url: amqpUrl, name: 'bench agent', log: benchLogger });
  const writerBus = connectBus({ url: amqpUrl, name: 'bench writer', log: benchLogger });
  const writer = await startService(stateWriter, { config: writerConfig, db: writerDb, bus: writerBus, log: benchLogger });
  const agent = await startService(syncAgent, { config: agentConfig, db: agentDb, bus: agentBus, log: benchLogger });
  try {
    await waitForConsumers(amqpUrl, [Queue.stateWriter, ...plan.hosts.map(tickQueue)], 60_000);
    const round = async (label: string): Promise<number> => {
      const changesBefore = tap.count(Exchange.changes);
      const reportsBefore = tap.count(Exchange.reports);
      const t0 = performance.now();
      await publishTickBurst(amqpUrl, plan.hosts);
      await waitFor(
        `${hosts} hosts, ${label}: ${expected.changes} change events`,
        () => tap.count(Exchange.changes) - changesBefore >= expected.changes && tap.count(Exchange.reports) - reportsBefore >= hosts,
        { timeoutMs: ROUND_TIMEOUT_MS, intervalMs: 10 },
      );
      return (tap.messages.filter((m) => m.exchange === Exchange.changes).at(-1)?.at ?? Number.NaN) - t0;
    };
    const coldMs = await round('cold');
    // Let the relay finish, then put the rows back for the warm round.
    await waitFor('outbox published', async () => Number((await sql<{ n: string }>`select count(*) as n from change_outbox where published_at is null`.execute(db)).rows[0]?.n) === 0, { timeoutMs: 30_000 });
    await restoreBenchFleet(db);
    const warmMs = await round('warm');
    context.progress(`${hosts} hosts: cold ${fmt(coldMs)} ms, warm ${fmt(warmMs)} ms`);
    return { hosts, coldMs, warmMs, changes: expected.changes };
  } finally {
    await agent.stop();
    await writer.stop();
    await agentBus.close();
    await writerBus.close();
    await agentDb.destroy();
    await writerDb.destroy();
    await tap.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** ~linear: each 10× step costs at most 10 × LINEAR_SLACK the time. */
function growth(points: ReadonlyArray<{ size: number; ms: number }>): string {
  const steps: string[] = [];
  let linear = true;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1];
    const b = points[i];
    if (a === undefined || b === undefined) continue;
    const factor = b.ms / a.ms;
    const sizeFactor = b.size / a.size;
    if (factor > sizeFactor * LINEAR_SLACK) linear = false;
    steps.push(`×${fmt(factor, 1)} for ×${fmt(sizeFactor, 0)}`);
  }
  return `${steps.join(', ')}: ${linear ? 'linear or better' : 'WORSE than linear'}`;
}

await runBench(
  {
    name: 'scaling',
    deadlineMs: 300_000,
    inputs: {
      'VMs per host (one host)': VMS_PER_HOST.join('/'),
      'hosts (100 VMs each)': HOST_COUNTS.join('/'),
      drift: DRIFT,
      'agent/writer': 'one each, in this process, defaults otherwise',
    },
  },
  async (context) => {
    const { db, url: databaseUrl } = await createBenchDatabase(context, 'scaling');
    const { amqpUrl } = await createBenchVhost(context);
    const workDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-bench-scaling-'));
    context.defer('remove node XML', () => rm(workDir, { recursive: true, force: true }));

    const hostPoints = await hostCurve(context, db, workDir);
    printTable(
      'One host: host sync time against VMs on the host (one bulk libvirt read, medians)',
      ['VMs', 'runs', 'host sync', 'rows read', 'libvirt read', 'per VM'],
      hostPoints.map((p) => [String(p.vms), String(p.runs), `${fmt(p.totalMs, 1)} ms`, `${fmt(p.rowsMs, 2)} ms`, `${fmt(p.libvirtMs, 1)} ms`, `${fmt((p.totalMs / p.vms) * 1000, 1)} µs`]),
    );
    console.log(`growth: ${growth(hostPoints.map((p) => ({ size: p.vms, ms: p.totalMs })))}\n`);

    const fleetPoints: FleetPoint[] = [];
    for (const hosts of HOST_COUNTS) {
      if (context.remainingMs() < 45_000) {
        context.progress(`skipping ${hosts} hosts: not enough time left`);
        continue;
      }
      fleetPoints.push(await fleetPoint(context, { db, databaseUrl, amqpUrl, workDir, hosts }));
    }
    printTable(
      `Fleet: burst of ticks to the last change event, ${FLEET_VMS} VMs per host, ${DRIFT * 100} % drift (one agent + one writer in this process)`,
      ['hosts', 'changes', 'cold', 'warm', 'warm per host'],
      fleetPoints.map((p) => [
        String(p.hosts),
        String(p.changes),
        `${fmt(p.coldMs)} ms`,
        `${fmt(p.warmMs)} ms`,
        `${fmt(p.warmMs / p.hosts, 2)} ms`,
      ]),
    );
    if (fleetPoints.length > 1) console.log(`growth (warm): ${growth(fleetPoints.map((p) => ({ size: p.hosts, ms: p.warmMs })))}`);
    console.log('');

    for (const p of hostPoints) context.result(`scaling-one-host-${p.vms}-vms-ms`, p.totalMs, 'ms');
    for (const p of fleetPoints) context.result(`scaling-fleet-${p.hosts}-hosts-s`, p.warmMs / 1000, 's');
  },
);
