/**
 * Scenario 1, one host: 1,000 domains (libvirt test driver) compared against their 1,000
 * rows, the way the agent does a host sync: readHostInstances + the hypervisor reader's
 * one bulk read() + compareHost. Two ways to reach the same node XML, interleaved so that
 * noise spreads over both: in process (`test:///<file>`) and through the shared libvirtd
 * (`test+unix:///<file>`: the daemon opens a private test host from the file, as
 * production reads `qemu:///system` through its daemon). Median over RUNS runs after
 * warm-up, plus this process's CPU per host sync (user + system, the agent's share).
 * Beside them: the bare bulk call, the old way (list + getInfo per domain through
 * @unraid/libvirt, 16 in flight), and the rows by index on a bare pg client.
 *
 *   npm run bench:one-host
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Hypervisor } from '@unraid/libvirt';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { type BulkConnection, openReadOnly } from '../native/libvirt-bulk/index.ts';
import { compareHost } from '../services/sync-agent/host-comparison.ts';
import { createLibvirtReader, type HypervisorReader } from '../services/sync-agent/hypervisor-reader.ts';
import { mapWithConcurrency } from '../shared/concurrency.ts';
import type { Database } from '../shared/db/database.ts';
import { readHostInstances } from '../shared/db/instances.ts';
import { nodeXmlPath } from '../tools/fleet/write-fleet.ts';
import { planBenchFleet, writeBenchFleet } from './lib/bench-fleet.ts';
import { runBench } from './lib/harness.ts';
import { benchLogger, createBenchDatabase } from './lib/resources.ts';
import { fmt, median } from './lib/stats.ts';
import { printTable } from './lib/table.ts';

const DOMAINS = 1_000;
const DRIFT = 0.1;
const WARMUP = 5;
const RUNS = 40;
const OLD_WAY_CONCURRENCY = 16;
const ROWS_QUERY = 'select uuid, power_state, vm_state, missed_reports from instances where host = $1 and deleted_at is null';

interface HostSyncTiming {
  totalMs: number;
  rowsMs: number;
  libvirtMs: number;
  compareMs: number;
  /** This process's CPU (all its threads) over the whole host sync, and over its rows read and its libvirt read. */
  cpuMs: number;
  rowsCpuMs: number;
  libvirtCpuMs: number;
  discrepancies: number;
}

/** One host sync as the agent does it, split into its three steps. */
async function timeHostSync(db: Kysely<Database>, reader: HypervisorReader, host: string): Promise<HostSyncTiming> {
  const cpuMs = (since: NodeJS.CpuUsage): number => {
    const used = process.cpuUsage(since);
    return (used.user + used.system) / 1000;
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const rows = await readHostInstances(db, host);
  const t1 = performance.now();
  const rowsCpuMs = cpuMs(cpu0);
  const cpu1 = process.cpuUsage();
  const snapshot = await reader.read();
  const t2 = performance.now();
  const libvirtCpuMs = cpuMs(cpu1);
  const comparison = compareHost(rows, snapshot);
  const t3 = performance.now();
  return {
    totalMs: t3 - t0,
    rowsMs: t1 - t0,
    libvirtMs: t2 - t1,
    compareMs: t3 - t2,
    cpuMs: cpuMs(cpu0),
    rowsCpuMs,
    libvirtCpuMs,
    discrepancies: comparison.discrepancies.length,
  };
}

async function timeBulkCall(connection: BulkConnection): Promise<number> {
  const t0 = performance.now();
  await connection.readAll();
  return performance.now() - t0;
}

/** What the agent did before the addon: list every domain, then getInfo each, 16 in flight. */
async function timeListAndInfo(hypervisor: Hypervisor): Promise<number> {
  const t0 = performance.now();
  const domains = await hypervisor.connectListAllDomains();
  await mapWithConcurrency(domains, OLD_WAY_CONCURRENCY, (domain) => hypervisor.domainGetInfo(domain));
  return performance.now() - t0;
}

await runBench(
  {
    name: 'one-host',
    deadlineMs: 150_000,
    inputs: { domains: DOMAINS, rows: DOMAINS, drift: DRIFT, warmup: WARMUP, runs: RUNS, 'UV_THREADPOOL_SIZE': process.env.UV_THREADPOOL_SIZE ?? '4 (default)' },
  },
  async (context) => {
    await promisify(execFile)('bash', [path.resolve(import.meta.dirname, '../infra/local/start-libvirtd.sh')]);
    const { db, url } = await createBenchDatabase(context, 'one_host');
    const fleetDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-bench-one-host-'));
    context.defer('remove node XML', () => rm(fleetDir, { recursive: true, force: true }));
    const plan = planBenchFleet({ hosts: 1, vmsPerHost: DOMAINS, driftRatio: DRIFT, seed: 1, hostPrefix: 'bench-one' });
    const host = plan.hosts[0] as string;
    await writeBenchFleet(db, plan, fleetDir);
    const file = nodeXmlPath(fleetDir, host);
    const uris = { 'in process': `test://${file}`, 'through libvirtd': `test+unix://${file}` } as const;
    const ways = Object.keys(uris) as Array<keyof typeof uris>;
    context.progress(`wrote ${DOMAINS} domains to ${file} and their rows`);

    const readers = new Map(ways.map((way) => [way, createLibvirtReader({ uri: uris[way], reconnectWaitMs: 0, log: benchLogger })]));
    context.defer('close readers', () => Promise.all([...readers.values()].map((reader) => reader.close())));
    const bulk = new Map<keyof typeof uris, BulkConnection>();
    const oldWay = new Map<keyof typeof uris, Hypervisor>();
    for (const way of ways) {
      const connection = await openReadOnly(uris[way]);
      context.defer(`close bare bulk connection (${way})`, () => connection.close());
      bulk.set(way, connection);
      const hypervisor = new Hypervisor({ uri: uris[way] });
      await hypervisor.connectOpen();
      context.defer(`close @unraid/libvirt connection (${way})`, () => hypervisor.connectClose());
      oldWay.set(way, hypervisor);
    }
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    context.defer('close bare pg client', () => client.end());

    const syncs = new Map(ways.map((way) => [way, [] as HostSyncTiming[]]));
    const bulkCalls = new Map(ways.map((way) => [way, [] as number[]]));
    const oldCalls = new Map(ways.map((way) => [way, [] as number[]]));
    const rowLimit: number[] = [];
    let discrepancies = 0;
    for (let run = 0; run < WARMUP + RUNS; run++) {
      for (const way of ways) {
        const timing = await timeHostSync(db, readers.get(way) as HypervisorReader, host);
        discrepancies = timing.discrepancies;
        const bulkMs = await timeBulkCall(bulk.get(way) as BulkConnection);
        const oldMs = await timeListAndInfo(oldWay.get(way) as Hypervisor);
        if (run < WARMUP) continue;
        syncs.get(way)?.push(timing);
        bulkCalls.get(way)?.push(bulkMs);
        oldCalls.get(way)?.push(oldMs);
      }
      const t0 = performance.now();
      const { rowCount } = await client.query(ROWS_QUERY, [host]);
      if (run >= WARMUP) rowLimit.push(performance.now() - t0);
      if (rowCount !== DOMAINS) throw new Error(`expected ${DOMAINS} rows, read ${rowCount}`);
    }
    context.progress('timed runs done');

    const med = (way: keyof typeof uris, pick: (t: HostSyncTiming) => number): number => median((syncs.get(way) ?? []).map(pick));
    printTable(
      `Host sync of ${DOMAINS} domains vs ${DOMAINS} rows (median of ${RUNS} runs; ${discrepancies} discrepancies found each run)`,
      ['libvirt', 'host sync', 'rows read', 'libvirt read', 'compare', 'agent CPU', '  of it rows', '  of it libvirt', 'bare bulk call', 'old way: list + getInfo each'],
      ways.map((way) => [
        way,
        `${fmt(med(way, (t) => t.totalMs), 2)} ms`,
        `${fmt(med(way, (t) => t.rowsMs), 2)} ms`,
        `${fmt(med(way, (t) => t.libvirtMs), 2)} ms`,
        `${fmt(med(way, (t) => t.compareMs), 2)} ms`,
        `${fmt(med(way, (t) => t.cpuMs), 2)} ms`,
        `${fmt(med(way, (t) => t.rowsCpuMs), 2)} ms`,
        `${fmt(med(way, (t) => t.libvirtCpuMs), 2)} ms`,
        `${fmt(median(bulkCalls.get(way) ?? []), 2)} ms`,
        `${fmt(median(oldCalls.get(way) ?? []), 1)} ms`,
      ]),
    );
    console.log(`rows limit (bare pg client, same query by index): ${fmt(median(rowLimit), 2)} ms for ${DOMAINS} rows`);
    console.log('agent CPU = this process (user + system) over a host sync; in process it includes the test driver itself, through libvirtd it does not\n');

    context.result('one-host-ms', med('in process', (t) => t.totalMs), 'ms');
    context.result('one-host-daemon-ms', med('through libvirtd', (t) => t.totalMs), 'ms');
    context.result('one-host-agent-cpu-ms', med('through libvirtd', (t) => t.cpuMs), 'ms');
    context.result('one-host-agent-cpu-in-process-ms', med('in process', (t) => t.cpuMs), 'ms');
    context.result('one-host-agent-cpu-rows-ms', med('through libvirtd', (t) => t.rowsCpuMs), 'ms');
    context.result('one-host-agent-cpu-libvirt-ms', med('through libvirtd', (t) => t.libvirtCpuMs), 'ms');
    context.result('one-host-bulk-call-ms', median(bulkCalls.get('in process') ?? []), 'ms');
    context.result('one-host-daemon-bulk-call-ms', median(bulkCalls.get('through libvirtd') ?? []), 'ms');
    context.result('one-host-old-way-ms', median(oldCalls.get('in process') ?? []), 'ms');
    context.result('one-host-rows-limit-ms', median(rowLimit), 'ms');
  },
);
