/**
 * Issue 16's choice, measured: how an agent gets its host's rows.
 * - Row-level security (what virtsync does): each agent reads its own host's rows with its own
 *   login (`agent:<host>`, as `virtsync hosts add` makes it), filtered by the policy.
 * - The conductor model (prototyped here only): agents hold no database credentials; the tick
 *   producer reads each host's rows with one indexed query and the tick carries them.
 * One database with the fleet bench's shape (hosts × vms rows) and one vhost of its own:
 * 1. One host's read, median of `reads`: as the table owner (no policy, the conductor's read)
 *    and as the host's login (the policy), alternating so drift on the machine hits both alike.
 * 2. A cycle's database-and-bus part end to end, each way, at the agents' concurrency: RLS: a
 *    small tick per host published with confirms and consumed, each consumer reading the rows
 *    through the host's login; conductor: the producer reads every host's rows, encodes them
 *    into a snapshot tick, publishes it with confirms, each consumer decodes and validates the
 *    rows. Wall time and CPU of this process (producer and consumers), PostgreSQL and RabbitMQ.
 *    The bench provisions one host login, so every RLS read is that host's: the same query,
 *    plan and row count as any host's. One scratch queue stands for the per-host tick queues.
 * 3. The snapshot tick's size for a host of `vms` and of 1,000 rows, in two encodings, against
 *    the bus's message limit.
 * The libvirt read, the compare and the observation publish are the same either way
 * (`bench:fleet-cycle`). TLS is off: this measures the models, not the transport.
 */
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import amqplib, { type ConfirmChannel } from 'amqplib';
import { type Kysely, sql } from 'kysely';
import { z } from 'zod';
import { createDatabase } from '../shared/db/connect.ts';
import type { Database } from '../shared/db/database.ts';
import { type HostInstance, readHostInstances } from '../shared/db/instances.ts';
import { MAX_MESSAGE_BYTES, encodeMessage, parseMessage } from '../shared/messages/codec.ts';
import { SCHEMA_VERSION, instanceUuidSchema, powerStateSchema, vmStateSchema } from '../shared/messages/fields.ts';
import { type Tick, tickSchema } from '../shared/messages/tick.ts';
import { PowerState } from '../shared/power-state.ts';
import { VmState } from '../shared/vm-state.ts';
import { grantHostDatabaseLogin } from '../tools/provisioning/host-database-login.ts';
import { runBench } from './lib/harness.ts';
import { cpuSecondsByCommand } from './lib/proc-stats.ts';
import { benchLogger, createBenchDatabase, createBenchVhost } from './lib/resources.ts';
import { fmt, median } from './lib/stats.ts';
import { printTable } from './lib/table.ts';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1000' },
    vms: { type: 'string', default: '100' },
    reads: { type: 'string', default: '2000' },
    cycles: { type: 'string', default: '3' },
  },
});
const hosts = Number(values.hosts);
const vms = Number(values.vms);
const reads = Number(values.reads);
const cycles = Number(values.cycles);
/** As the fleet bench runs its agents: AGENT_HOST_CONCURRENCY 16 over a pool of 4. */
const CONCURRENCY = 16;
const POOL_SIZE = 4;

/** The prototype's snapshot tick: the host's live rows as tuples, the compact of the two encodings measured. */
const snapshotRowSchema = z.tuple([instanceUuidSchema, powerStateSchema, vmStateSchema, z.string().nullable(), z.number().int().min(0)]);
const snapshotTickSchema = tickSchema.extend({ rows: z.array(snapshotRowSchema) });
type SnapshotTick = z.infer<typeof snapshotTickSchema>;
const toSnapshotRow = (row: HostInstance): SnapshotTick['rows'][number] => [row.uuid, row.powerState, row.vmState, row.taskState, row.missedReports];
// The tuple is the one measured (docs/performance.md): it predates report-only mode's `shadowed`, which would add `,false` (6 B) per row.
const fromSnapshotRow = ([uuid, powerState, vmState, taskState, missedReports]: SnapshotTick['rows'][number]): HostInstance => ({ uuid, powerState, vmState, taskState, missedReports, shadowed: false });

const tickFor = (host: string): Tick => ({ schemaVersion: SCHEMA_VERSION, tickId: randomUUID(), host, cycle: 1, scheduledAt: new Date().toISOString(), trigger: 'periodic' });

interface CycleRun {
  wallMs: number;
  /** CPU seconds: this process (producer and consumers), PostgreSQL, RabbitMQ. */
  cpu: { bench: number; postgres: number; rabbitmq: number };
  tickBytes: number;
}

await runBench({ name: 'agent-database-reach', deadlineMs: 900_000, inputs: { hosts, vms, reads, cycles } }, async (context) => {
  const { db, url } = await createBenchDatabase(context, 'agent-reach', POOL_SIZE);
  const { amqpUrl } = await createBenchVhost(context);
  context.progress(`seeding ${hosts * vms} rows`);
  const names = Array.from({ length: hosts }, (_, index) => `reach-host-${index}`);
  await db.insertInto('compute_hosts').values(names.map((host) => ({ host }))).execute();
  for (let first = 0; first < hosts; first += 100) {
    const rows = names.slice(first, first + 100).flatMap((host) =>
      Array.from({ length: vms }, () => ({ uuid: randomUUID(), host, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE })),
    );
    await db.insertInto('instances').values(rows).execute();
  }
  await sql`analyze instances`.execute(db);
  const loginHost = names[Math.floor(hosts / 2)] ?? 'reach-host-0';
  const login = await grantHostDatabaseLogin(db, loginHost);
  context.defer(`drop role ${login}`, () => sql`drop role if exists ${sql.id(login)}`.execute(db));
  // The bench's server trusts local logins (no password): only the login changes.
  const agentUrl = new URL(url);
  agentUrl.username = encodeURIComponent(login);
  const agentDb = createDatabase({ url: agentUrl.toString(), log: benchLogger, maxConnections: POOL_SIZE });
  context.defer('close agent pool', () => agentDb.destroy());

  const readRows = async (target: Kysely<Database>, host: string): Promise<HostInstance[]> => {
    const rows = await readHostInstances(target, host);
    if (rows.length !== vms) throw new Error(`read ${rows.length} rows of ${host}, expected ${vms}`);
    return rows;
  };

  // 1. One host's read, each way.
  const owner: number[] = [];
  const agent: number[] = [];
  const time = async (target: Kysely<Database>, into: number[]): Promise<void> => {
    const started = process.hrtime.bigint();
    await readRows(target, loginHost);
    into.push(Number(process.hrtime.bigint() - started) / 1e6);
  };
  context.progress(`one host's read, ${reads} times each way`);
  for (let warm = 0; warm < 50; warm++) await Promise.all([time(db, []), time(agentDb, [])]);
  for (let round = 0; round < reads; round++) {
    await time(db, owner);
    await time(agentDb, agent);
  }
  const [ownerMs, agentMs] = [median(owner), median(agent)];

  // 2. A cycle's database-and-bus part, each way.
  const connection = await amqplib.connect(amqpUrl);
  context.defer('close bus connection', () => connection.close());
  const publisher = await connection.createConfirmChannel();
  const consumer = await connection.createChannel();
  const queue = (await consumer.assertQueue(`bench.reach.${randomUUID()}`, { durable: true })).queue;
  await consumer.prefetch(CONCURRENCY);

  /** Publishes one message per host from `encode` (at most CONCURRENCY encoding at once) while `consume` handles each; resolves when all are consumed. */
  const runCycle = async (encode: (host: string) => Promise<Buffer>, consume: (content: Buffer) => Promise<void>): Promise<CycleRun> => {
    let consumed = 0;
    let tickBytes = 0;
    let allConsumed!: () => void;
    let consumeFailed!: (err: unknown) => void;
    const done = new Promise<void>((resolve, reject) => {
      allConsumed = resolve;
      consumeFailed = reject;
    });
    const componentsBefore = cpuSecondsByCommand(['postgres', 'beam.smp']);
    const benchBefore = process.cpuUsage();
    const started = performance.now();
    const { consumerTag } = await consumer.consume(queue, (message) => {
      if (message === null) return;
      consume(message.content).then(() => {
        consumer.ack(message);
        if (++consumed === hosts) allConsumed();
      }, consumeFailed);
    });
    await publishAll(publisher, queue, names, async (host) => {
      const body = await encode(host);
      tickBytes = Math.max(tickBytes, body.length);
      return body;
    });
    await done;
    const wallMs = performance.now() - started;
    const benchCpu = process.cpuUsage(benchBefore);
    const componentsAfter = cpuSecondsByCommand(['postgres', 'beam.smp']);
    await consumer.cancel(consumerTag);
    const delta = (name: string): number => (componentsAfter.get(name) ?? 0) - (componentsBefore.get(name) ?? 0);
    return { wallMs, cpu: { bench: (benchCpu.user + benchCpu.system) / 1e6, postgres: delta('postgres'), rabbitmq: delta('beam.smp') }, tickBytes };
  };

  const rlsCycle = (): Promise<CycleRun> =>
    runCycle(
      async (host) => encodeMessage(tickSchema, tickFor(host)),
      async (content) => {
        const tick = parseMessage(tickSchema, content);
        if (!tick.ok) throw new Error(tick.reason);
        await readRows(agentDb, loginHost);
      },
    );
  const conductorCycle = (): Promise<CycleRun> =>
    runCycle(
      async (host) => encodeMessage(snapshotTickSchema, { ...tickFor(host), rows: (await readRows(db, host)).map(toSnapshotRow) }),
      async (content) => {
        const tick = parseMessage(snapshotTickSchema, content);
        if (!tick.ok) throw new Error(tick.reason);
        if (tick.value.rows.map(fromSnapshotRow).length !== vms) throw new Error(`snapshot of ${tick.value.host} lost rows`);
      },
    );

  const rls: CycleRun[] = [];
  const conductor: CycleRun[] = [];
  for (let cycle = 0; cycle <= cycles; cycle++) {
    context.progress(`cycle ${cycle}${cycle === 0 ? ' (warm-up)' : ''}: RLS, then conductor`);
    const [rlsRun, conductorRun] = [await rlsCycle(), await conductorCycle()];
    if (cycle === 0) continue;
    rls.push(rlsRun);
    conductor.push(conductorRun);
  }

  // 3. The snapshot's size for a host of `vms` and of 1,000 rows, both encodings.
  const syntheticRows = (count: number): HostInstance[] =>
    Array.from({ length: count }, () => ({ uuid: randomUUID(), powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState: null, missedReports: 0, shadowed: false }));
  const sizes = [vms, 1000].map((count) => {
    const rows = syntheticRows(count);
    const base = tickFor('compute-0042.example.org');
    return {
      count,
      objects: Buffer.byteLength(JSON.stringify({ ...base, rows })),
      tuples: Buffer.byteLength(JSON.stringify({ ...base, rows: rows.map(toSnapshotRow) })),
    };
  });

  const cycleRow = (label: string, runs: readonly CycleRun[]): string[] => [
    label,
    `${fmt(median(runs.map((run) => run.wallMs)) / 1000, 2)} s`,
    `${fmt(median(runs.map((run) => run.cpu.bench)), 2)} s`,
    `${fmt(median(runs.map((run) => run.cpu.postgres)), 2)} s`,
    `${fmt(median(runs.map((run) => run.cpu.rabbitmq)), 2)} s`,
    `${fmt(Math.max(...runs.map((run) => run.tickBytes)), 0)} B`,
  ];
  printTable(
    `One host's read (${vms} rows of ${hosts * vms}), median of ${reads}`,
    ['as', 'median'],
    [
      ['table owner (no policy: the conductor\'s read)', `${fmt(ownerMs, 3)} ms`],
      [`${login} (row-level security)`, `${fmt(agentMs, 3)} ms`],
    ],
  );
  printTable(
    `A cycle's database-and-bus part, ${hosts} hosts × ${vms} rows, concurrency ${CONCURRENCY}, median of ${cycles}`,
    ['model', 'wall', 'CPU: bench (producer + consumers)', 'CPU: PostgreSQL', 'CPU: RabbitMQ', 'largest tick'],
    [cycleRow('row-level security (agents read)', rls), cycleRow('conductor (the tick carries the rows)', conductor)],
  );
  printTable(
    `The snapshot tick's size (limit ${MAX_MESSAGE_BYTES} B)`,
    ['rows', 'rows as objects', 'rows as tuples'],
    sizes.map(({ count, objects, tuples }) => [String(count), `${objects} B`, `${tuples} B`]),
  );

  context.result('agent-read-owner-ms', ownerMs, 'ms');
  context.result('agent-read-rls-ms', agentMs, 'ms');
  context.result('rls-added-per-cycle-ms', (agentMs - ownerMs) * hosts, `ms of database time over ${hosts} host reads`);
  const cpuOf = (runs: readonly CycleRun[]): number => median(runs.map((run) => run.cpu.bench + run.cpu.postgres + run.cpu.rabbitmq));
  context.result('reach-cycle-rls-s', median(rls.map((run) => run.wallMs)) / 1000, 's');
  context.result('reach-cycle-conductor-s', median(conductor.map((run) => run.wallMs)) / 1000, 's');
  context.result('reach-cycle-rls-cpu-s', cpuOf(rls), 'CPU-s (bench + PostgreSQL + RabbitMQ)');
  context.result('reach-cycle-conductor-cpu-s', cpuOf(conductor), 'CPU-s (bench + PostgreSQL + RabbitMQ)');
  const thousand = sizes.find((size) => size.count === 1000);
  if (thousand !== undefined) context.result('snapshot-1000-rows-bytes', thousand.tuples, `B as tuples (limit ${MAX_MESSAGE_BYTES})`);
});

/** Publishes one persistent message per host with at most CONCURRENCY being encoded or unconfirmed at once. */
async function publishAll(channel: ConfirmChannel, queue: string, hostNames: readonly string[], encode: (host: string) => Promise<Buffer>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < hostNames.length) {
      const host = hostNames[next++];
      if (host === undefined) return;
      const body = await encode(host);
      await new Promise<void>((resolve, reject) => {
        channel.publish('', queue, body, { persistent: true, contentType: 'application/json', type: 'tick' }, (err) => (err ? reject(err) : resolve()));
      });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
}
