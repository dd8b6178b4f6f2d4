/**
 * Scenario 1, one host: 1,000 domains (libvirt test driver, test:///<file>) compared
 * against their 1,000 rows, the way the agent does a host sync: readHostInstances +
 * the hypervisor reader's read() + compareHost. Median over RUNS runs after warm-up, for
 * each LIBVIRT_CONCURRENCY, interleaved so that noise spreads over all of them.
 * Limits re-measured in the same run: list all domains + getInfo each (serial and
 * concurrent) on a bare connection, and the host's rows by index on a bare pg client;
 * beside them, the reader's one-by-one fallback (list + UUID + getInfo each).
 * UV_THREADPOOL_SIZE (the bindings run every libvirt call on libuv's pool) is tried in
 * child processes, since it is read when a process starts.
 *
 *   npm run bench:one-host
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Hypervisor } from '@unraid/libvirt';
import pg from 'pg';
import { compareHost } from '../services/sync-agent/host-comparison.ts';
import { createLibvirtReader, type HypervisorReader } from '../services/sync-agent/hypervisor-reader.ts';
import { mapWithConcurrency } from '../shared/concurrency.ts';
import { createDatabase } from '../shared/db/connect.ts';
import { readHostInstances } from '../shared/db/instances.ts';
import { nodeXmlPath } from '../tools/fleet/write-fleet.ts';
import { planBenchFleet, writeBenchFleet } from './lib/bench-fleet.ts';
import { runBench } from './lib/harness.ts';
import { benchLogger, createBenchDatabase } from './lib/resources.ts';
import { fmt, median } from './lib/stats.ts';
import { printTable } from './lib/table.ts';

const DOMAINS = 1_000;
const DRIFT = 0.1;
const WARMUP = 3;
const RUNS = 25;
const CONCURRENCIES = [1, 8, 16, 32, 64] as const;
/** The shipped default of LIBVIRT_CONCURRENCY: the headline figure. */
const DEFAULT_CONCURRENCY = 16;
const THREADPOOL_SIZES = [1, 2, 4, 8, 16] as const;
const CHILD_RUNS = 20;
const ROWS_QUERY = 'select uuid, power_state, vm_state, missed_reports from instances where host = $1 and deleted_at is null';

interface HostSyncTiming {
  totalMs: number;
  rowsMs: number;
  libvirtMs: number;
  compareMs: number;
  discrepancies: number;
}

/** One host sync as the agent does it, split into its three steps. */
async function timeHostSync(db: ReturnType<typeof createDatabase>, reader: HypervisorReader, host: string): Promise<HostSyncTiming> {
  const t0 = performance.now();
  const rows = await readHostInstances(db, host);
  const t1 = performance.now();
  const snapshot = await reader.read();
  const t2 = performance.now();
  const comparison = compareHost(rows, snapshot);
  const t3 = performance.now();
  return { totalMs: t3 - t0, rowsMs: t1 - t0, libvirtMs: t2 - t1, compareMs: t3 - t2, discrepancies: comparison.discrepancies.length };
}

/** The libvirt limit: list every domain, then getInfo each, `concurrency` calls in flight. */
async function timeListAndInfo(hypervisor: Hypervisor, concurrency: number): Promise<number> {
  const t0 = performance.now();
  const domains = await hypervisor.connectListAllDomains();
  await mapWithConcurrency(domains, concurrency, (domain) => hypervisor.domainGetInfo(domain));
  return performance.now() - t0;
}

/** The same plus the UUID of each: the reader's one-by-one way, taken when domains change state while it lists them. */
async function timeListUuidAndInfo(hypervisor: Hypervisor, concurrency: number): Promise<number> {
  const t0 = performance.now();
  const domains = await hypervisor.connectListAllDomains();
  await mapWithConcurrency(domains, concurrency, async (domain) => {
    await hypervisor.domainGetUUIDString(domain);
    await hypervisor.domainGetInfo(domain);
  });
  return performance.now() - t0;
}

interface ChildInput {
  uri: string;
  databaseUrl: string;
  host: string;
  concurrency: number;
  runs: number;
}

interface ChildOutput {
  threadpool: string;
  hostSyncMs: number;
  libvirtMs: number;
  limitMs: number;
}

/** In a child process: the host sync and the libvirt limit at one concurrency, under this process's UV_THREADPOOL_SIZE. */
async function runChild(input: ChildInput): Promise<void> {
  const db = createDatabase({ url: input.databaseUrl, log: benchLogger, maxConnections: 2 });
  const reader = createLibvirtReader({ uri: input.uri, concurrency: input.concurrency, log: benchLogger });
  const hypervisor = new Hypervisor({ uri: input.uri });
  await hypervisor.connectOpen();
  try {
    const syncs: HostSyncTiming[] = [];
    const limits: number[] = [];
    for (let i = 0; i < WARMUP + input.runs; i++) {
      const sync = await timeHostSync(db, reader, input.host);
      const limit = await timeListAndInfo(hypervisor, input.concurrency);
      if (i < WARMUP) continue;
      syncs.push(sync);
      limits.push(limit);
    }
    const output: ChildOutput = {
      // Read-only here: the environment this process was started with is the variable under test.
      threadpool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
      hostSyncMs: median(syncs.map((s) => s.totalMs)),
      libvirtMs: median(syncs.map((s) => s.libvirtMs)),
      limitMs: median(limits),
    };
    process.stdout.write(`${JSON.stringify(output)}\n`);
  } finally {
    await reader.close();
    await hypervisor.connectClose();
    await db.destroy();
  }
}

async function runThreadpoolChild(input: ChildInput, size: number): Promise<ChildOutput> {
  const self = fileURLToPath(import.meta.url);
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', self, '--child', JSON.stringify(input)], {
    cwd: path.resolve(path.dirname(self), '..'),
    env: { ...process.env, UV_THREADPOOL_SIZE: String(size) },
    timeout: 60_000,
  });
  const line = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as ChildOutput;
}

const childIndex = process.argv.indexOf('--child');
if (childIndex !== -1) {
  await runChild(JSON.parse(process.argv[childIndex + 1] ?? '{}') as ChildInput);
  process.exit(0);
}

await runBench(
  {
    name: 'one-host',
    deadlineMs: 150_000,
    inputs: {
      domains: DOMAINS,
      rows: DOMAINS,
      drift: DRIFT,
      warmup: WARMUP,
      runs: RUNS,
      concurrencies: CONCURRENCIES.join('/'),
      'UV_THREADPOOL_SIZE (this process)': process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
    },
  },
  async (context) => {
    const { db, url } = await createBenchDatabase(context, 'one_host');
    const fleetDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-bench-one-host-'));
    context.defer('remove node XML', () => rm(fleetDir, { recursive: true, force: true }));
    const plan = planBenchFleet({ hosts: 1, vmsPerHost: DOMAINS, driftRatio: DRIFT, seed: 1, hostPrefix: 'bench-one' });
    const host = plan.hosts[0] as string;
    await writeBenchFleet(db, plan, fleetDir);
    const uri = `test://${nodeXmlPath(fleetDir, host)}`;
    context.progress(`wrote ${DOMAINS} domains to ${uri} and their rows`);

    // The agent's way, one reader per concurrency (each keeps its connection, as the agent does).
    const readers = new Map<number, HypervisorReader>(
      CONCURRENCIES.map((concurrency) => [concurrency, createLibvirtReader({ uri, concurrency, log: benchLogger })]),
    );
    context.defer('close readers', () => Promise.all([...readers.values()].map((reader) => reader.close())));
    // The limits, on bare connections.
    const hypervisor = new Hypervisor({ uri });
    await hypervisor.connectOpen();
    context.defer('close bare libvirt connection', () => hypervisor.connectClose());
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    context.defer('close bare pg client', () => client.end());

    const syncs = new Map<number, HostSyncTiming[]>(CONCURRENCIES.map((c) => [c, []]));
    const limitInfo = new Map<number, number[]>(CONCURRENCIES.map((c) => [c, []]));
    const limitUuidInfo = new Map<number, number[]>(CONCURRENCIES.map((c) => [c, []]));
    const rowLimit: number[] = [];
    let discrepancies = 0;
    for (let run = 0; run < WARMUP + RUNS; run++) {
      for (const concurrency of CONCURRENCIES) {
        const timing = await timeHostSync(db, readers.get(concurrency) as HypervisorReader, host);
        discrepancies = timing.discrepancies;
        const info = await timeListAndInfo(hypervisor, concurrency);
        const uuidInfo = await timeListUuidAndInfo(hypervisor, concurrency);
        if (run < WARMUP) continue;
        syncs.get(concurrency)?.push(timing);
        limitInfo.get(concurrency)?.push(info);
        limitUuidInfo.get(concurrency)?.push(uuidInfo);
      }
      const t0 = performance.now();
      const { rowCount } = await client.query(ROWS_QUERY, [host]);
      if (run >= WARMUP) rowLimit.push(performance.now() - t0);
      if (rowCount !== DOMAINS) throw new Error(`expected ${DOMAINS} rows, read ${rowCount}`);
    }
    context.progress('timed runs done');

    const rowsLimitMs = median(rowLimit);
    const bestLimitMs = Math.min(...CONCURRENCIES.filter((c) => c >= 8).map((c) => median(limitInfo.get(c) ?? [])));
    printTable(
      `Host sync of ${DOMAINS} domains vs ${DOMAINS} rows (median of ${RUNS} runs, ms; ${discrepancies} discrepancies found each run)`,
      ['LIBVIRT_CONCURRENCY', 'host sync', 'rows read', 'libvirt read', 'compare', 'domains/s', 'limit: list+info', 'one by one: list+uuid+info', 'share of limit'],
      CONCURRENCIES.map((c) => {
        const timings = syncs.get(c) ?? [];
        const total = median(timings.map((t) => t.totalMs));
        const info = median(limitInfo.get(c) ?? []);
        return [
          String(c),
          `${fmt(total, 1)} ms`,
          `${fmt(median(timings.map((t) => t.rowsMs)), 2)} ms`,
          `${fmt(median(timings.map((t) => t.libvirtMs)), 1)} ms`,
          `${fmt(median(timings.map((t) => t.compareMs)), 2)} ms`,
          fmt((DOMAINS / total) * 1000, 0),
          `${fmt(info, 1)} ms (${fmt((DOMAINS / info) * 1000, 0)}/s)`,
          `${fmt(median(limitUuidInfo.get(c) ?? []), 1)} ms`,
          `${fmt((info / total) * 100, 0)} %`,
        ];
      }),
    );
    console.log(`rows limit (bare pg client, same query by index): ${fmt(rowsLimitMs, 2)} ms for ${DOMAINS} rows`);
    console.log(`libvirt limit, serial: ${fmt((DOMAINS / median(limitInfo.get(1) ?? [])) * 1000, 0)} domains/s; best at 8-64: ${fmt((DOMAINS / bestLimitMs) * 1000, 0)} domains/s (${fmt(bestLimitMs, 1)} ms)`);
    console.log('share of limit = bare list+getInfo time / host sync time at the same concurrency (issue 5 target: >= 50 %, <= 60 ms)\n');

    // UV_THREADPOOL_SIZE: every libvirt call of the bindings is an AsyncWorker on libuv's pool.
    const childRows: string[][] = [];
    for (const size of THREADPOOL_SIZES) {
      if (context.remainingMs() < 30_000) break;
      const output = await runThreadpoolChild({ uri, databaseUrl: url, host, concurrency: DEFAULT_CONCURRENCY, runs: CHILD_RUNS }, size);
      childRows.push([String(size), `${fmt(output.hostSyncMs, 1)} ms`, `${fmt(output.libvirtMs, 1)} ms`, `${fmt(output.limitMs, 1)} ms`, fmt((DOMAINS / output.limitMs) * 1000, 0)]);
    }
    printTable(
      `UV_THREADPOOL_SIZE, in child processes (LIBVIRT_CONCURRENCY ${DEFAULT_CONCURRENCY}, median of ${CHILD_RUNS} runs)`,
      ['UV_THREADPOOL_SIZE', 'host sync', 'libvirt read', 'limit: list+info', 'limit domains/s'],
      childRows,
    );

    const headline = median((syncs.get(DEFAULT_CONCURRENCY) ?? []).map((t) => t.totalMs));
    const headlineLimit = median(limitInfo.get(DEFAULT_CONCURRENCY) ?? []);
    console.log(`headline: LIBVIRT_CONCURRENCY=${DEFAULT_CONCURRENCY} (the default), target <= 60 ms`);
    context.result('one-host-ms', headline, 'ms');
    for (const c of CONCURRENCIES) context.result(`one-host-ms-c${c}`, median((syncs.get(c) ?? []).map((t) => t.totalMs)), 'ms');
    context.result('one-host-libvirt-limit-domains-per-s', (DOMAINS / bestLimitMs) * 1000, 'domains/s');
    context.result('one-host-libvirt-serial-domains-per-s', (DOMAINS / median(limitInfo.get(1) ?? [])) * 1000, 'domains/s');
    context.result('one-host-share-of-libvirt-limit', (headlineLimit / headline) * 100, '%');
    context.result('one-host-rows-limit-ms', rowsLimitMs, 'ms');
  },
);
