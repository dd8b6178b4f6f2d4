/**
 * Scenario 2, the state writer: observations in, committed changes (row update + outbox
 * row, one transaction per batch) out, per second. N drifted observations (RUNNING rows
 * seen SHUTOFF: every one is a change) are preloaded into virtsync.state-writer through
 * a confirm channel, 10 to a message as agents publish a host sync of 100 VMs at 10 %
 * drift; then the real writer (startStateWriter, in this process) is started
 * and timed until its last batch is committed, and until the outbox relay has published
 * every change event. Once per WRITER_BATCH_SIZE, on rows put back each time.
 * Limits re-measured in the same run: PostgreSQL with batched UPDATE … FROM unnest of
 * 1,000 rows per statement (alone, with an outbox row per change, with an outbox row and
 * an audit row per change (the reference, which each run's share is of), and with
 * the writer's row locks too), one autocommitted UPDATE at a time, and RabbitMQ publish (confirms,
 * window of 1,000) and consume (manual ack) on a quorum queue.
 *
 *   npm run bench:writer
 *   WRITER_MAX_IN_FLIGHT=2 npm run bench:writer   # the writer's setting, passed through (default: the writer's)
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { ConfirmChannel } from 'amqplib';
import amqplib from 'amqplib';
import { type Kysely, sql } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { applyObservations } from '../services/state-writer/apply-observations.ts';
import { stateWriter } from '../services/state-writer/state-writer.ts';
import { connectBus } from '../shared/bus/connect.ts';
import { declareCoreTopology, Exchange, observationRoutingKey, Queue } from '../shared/bus/topology.ts';
import { loadConfig, stateWriterEnv } from '../shared/config.ts';
import { countUnpublished } from '../shared/db/change-outbox.ts';
import { createDatabase } from '../shared/db/connect.ts';
import type { Database } from '../shared/db/database.ts';
import { encodeMessage } from '../shared/messages/codec.ts';
import { groupObservations, hostObservationsSchema, type Observation } from '../shared/messages/observation.ts';
import { PowerState } from '../shared/power-state.ts';
import { VmState } from '../shared/vm-state.ts';
import { waitFor } from '../tools/wait-for.ts';
import { runBench } from './lib/harness.ts';
import { type CpuWindow, startCpuWindow } from './lib/proc-stats.ts';
import { createBenchDatabase, createBenchVhost } from './lib/resources.ts';
import { fmt } from './lib/stats.ts';
import { printTable } from './lib/table.ts';
import { startService } from '../shared/service-runner.ts';

const ROWS = 50_000;
const HOSTS = 50;
/** Drifted instances per host sync: 10 % of 100 VMs, as in the fleet cycle. */
const OBSERVATIONS_PER_SYNC = 10;
/** Messages the ROWS observations travel in (ROWS / HOSTS is a multiple of OBSERVATIONS_PER_SYNC). */
const PRELOAD_MESSAGES = ROWS / OBSERVATIONS_PER_SYNC;
const BATCH_SIZES = [250, 500, 1_000] as const;
/** The shipped default of WRITER_BATCH_SIZE: the headline figure. */
const DEFAULT_BATCH_SIZE = 500;
const PUBLISH_WINDOW = 1_000;
const LIMIT_CHUNK = 1_000;
const AUTOCOMMIT_ROWS = 2_000;
const CONSUME_PREFETCH = 100;
const RUN_TIMEOUT_MS = 60_000;
const OLD = new Date(Date.now() - 3_600_000).toISOString();
/** The one writer setting the bench takes from its environment, to compare transactions in flight. */
const MAX_IN_FLIGHT_ENV = process.env.WRITER_MAX_IN_FLIGHT === undefined ? {} : { WRITER_MAX_IN_FLIGHT: process.env.WRITER_MAX_IN_FLIGHT };

const hostOf = (i: number): string => `bench-writer-${String(i % HOSTS).padStart(3, '0')}`;

async function insertRows(db: Kysely<Database>, uuids: readonly string[]): Promise<void> {
  await db.insertInto('compute_hosts').values(Array.from({ length: HOSTS }, (_, i) => ({ host: hostOf(i) }))).execute();
  for (let start = 0; start < uuids.length; start += 5_000) {
    const chunk = uuids.slice(start, start + 5_000);
    await sql`
      insert into instances (uuid, host, power_state, vm_state, power_state_updated_at, created_at, updated_at)
      select u.uuid, u.host, ${PowerState.RUNNING}, 'active', ${OLD}::timestamptz, ${OLD}::timestamptz, ${OLD}::timestamptz
        from unnest(${sql.val(chunk)}::uuid[], ${sql.val(chunk.map((_, i) => hostOf(start + i)))}::text[]) as u(uuid, host)`.execute(db);
  }
}

/** Every row back to RUNNING/ACTIVE; virtsync's bookkeeping, the outbox and audit log emptied; dead tuples gone. */
async function resetRows(db: Kysely<Database>): Promise<void> {
  await sql`update instances set power_state = ${PowerState.RUNNING}, vm_state = 'active'`.execute(db);
  await sql`truncate instance_sync_state, change_outbox, audit_log`.execute(db);
  await sql`vacuum analyze instances`.execute(db);
  await sql`vacuum analyze change_outbox`.execute(db);
}

/** Each host's observations come OBSERVATIONS_PER_SYNC at a time, one tick each: host syncs as the agents publish them. */
function observationObjects(uuids: readonly string[]): Observation[] {
  const observedAt = new Date().toISOString();
  const ticks = new Map<string, string>();
  const expected = { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState: null };
  return uuids.map((uuid, i) => {
    const host = hostOf(i);
    const syncIndex = Math.floor(i / HOSTS / OBSERVATIONS_PER_SYNC);
    const sync = `${host}/${syncIndex}`;
    const tickId = ticks.get(sync) ?? randomUUID();
    ticks.set(sync, tickId);
    // One look per host sync, as an agent numbers them.
    const look = { epoch: 1, seq: syncIndex + 1 };
    return { observationId: randomUUID(), instanceUuid: uuid, host, powerState: PowerState.SHUTOFF, expected, observedAt, look, trigger: 'tick', tickId };
  });
}

function observationsFor(uuids: readonly string[]): Array<{ routingKey: string; body: Buffer }> {
  return groupObservations(observationObjects(uuids)).map((message) => ({
    routingKey: observationRoutingKey(message.host),
    body: encodeMessage(hostObservationsSchema, message),
  }));
}

/** Publishes persistent messages with at most PUBLISH_WINDOW unconfirmed; returns the elapsed ms. */
async function publishConfirmed(channel: ConfirmChannel, exchange: string, messages: ReadonlyArray<{ routingKey: string; body: Buffer }>): Promise<number> {
  const t0 = performance.now();
  for (let start = 0; start < messages.length; start += PUBLISH_WINDOW) {
    for (const message of messages.slice(start, start + PUBLISH_WINDOW)) {
      channel.publish(exchange, message.routingKey, message.body, { persistent: true, contentType: 'application/json', type: 'host-observations' });
    }
    await channel.waitForConfirms();
  }
  return performance.now() - t0;
}

interface WriterRun {
  batchSize: number;
  publishMs: number;
  /** From the writer's start to the last batch committed. */
  commitMs: number;
  /** From the first batch's start to the last batch committed (the steady state). */
  steadyMs: number;
  /** From the writer's start to every change event published by the relay. */
  publishedMs: number;
  batches: number;
  changes: number;
  meanBatchMs: number;
  cpu: CpuWindow;
  /** PostgreSQL's batched update + outbox rate measured just before this run, rows/s. */
  adjacentLimit: number;
}

await runBench(
  {
    name: 'writer',
    deadlineMs: 240_000,
    inputs: {
      rows: ROWS,
      hosts: HOSTS,
      observations: `${ROWS} (RUNNING rows observed SHUTOFF: one change each), ${OBSERVATIONS_PER_SYNC} per message`,
      batchSizes: BATCH_SIZES.join('/'),
      'WRITER_BATCH_LINGER_MS': `${loadConfig(stateWriterEnv, { DATABASE_URL: 'postgres://unused', AMQP_URL: 'amqp://unused' }).batchLingerMs} (default)`,
      'WRITER_MAX_IN_FLIGHT': String(loadConfig(stateWriterEnv, { DATABASE_URL: 'postgres://unused', AMQP_URL: 'amqp://unused', ...MAX_IN_FLIGHT_ENV }).maxInFlight),
      'writer': 'in-process startStateWriter, its own pool and broker connection',
    },
  },
  async (context) => {
    const { db, url } = await createBenchDatabase(context, 'writer');
    const { amqpUrl } = await createBenchVhost(context);
    const uuids = Array.from({ length: ROWS }, () => randomUUID());
    await insertRows(db, uuids);
    context.progress(`inserted ${ROWS} rows`);

    const connection = await amqplib.connect(amqpUrl);
    context.defer('close bench broker connection', () => connection.close());
    const channel = await connection.createConfirmChannel();
    await declareCoreTopology(channel);

    // PostgreSQL limits, on a bare client, over the same rows.
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    context.defer('close bare pg client', () => client.end());
    const payload = JSON.stringify({
      schemaVersion: 1,
      eventId: randomUUID(),
      instanceUuid: randomUUID(),
      host: hostOf(0),
      rule: 'stopped',
      before: { powerState: 1, vmState: 'active' },
      after: { powerState: 5, vmState: 'shutoff' },
      observationId: randomUUID(),
      observedAt: new Date().toISOString(),
      committedAt: new Date().toISOString(),
    });
    /** PostgreSQL alone, 1,000 rows per transaction; 'update+audit+outbox' is the reference for target 2. */
    const limit = async (variant: 'update' | 'update+outbox' | 'update+audit+outbox' | 'lock+update+outbox'): Promise<number> => {
      await resetRows(db);
      const at = new Date().toISOString();
      const t0 = performance.now();
      for (let start = 0; start < ROWS; start += LIMIT_CHUNK) {
        const chunk = uuids.slice(start, start + LIMIT_CHUNK);
        await client.query('begin');
        if (variant === 'lock+update+outbox') {
          await client.query('select uuid, host, power_state, vm_state, task_state, deleted_at, power_state_updated_at, missed_reports, last_missed_at from instances where uuid = any($1::uuid[]) order by uuid for update', [chunk]);
        }
        await client.query(
          `update instances as i set power_state = u.power_state, vm_state = u.vm_state, power_state_updated_at = u.at, missed_reports = 0, last_missed_at = null, updated_at = now()
             from unnest($1::uuid[], $2::smallint[], $3::text[], $4::timestamptz[]) as u(uuid, power_state, vm_state, at) where i.uuid = u.uuid`,
          [chunk, chunk.map(() => PowerState.SHUTOFF), chunk.map(() => 'shutoff'), chunk.map(() => at)],
        );
        if (variant !== 'update') {
          await client.query(
            'insert into change_outbox (event_id, routing_key, payload) select * from unnest($1::uuid[], $2::text[], $3::jsonb[])',
            [chunk.map(() => randomUUID()), chunk.map((_, i) => `instance.${hostOf(start + i)}.shutoff`), chunk.map(() => payload)],
          );
        }
        if (variant === 'update+audit+outbox') {
          await client.query(
            `insert into audit_log (event_id, instance_uuid, host, rule, reason, before_power_state, after_power_state, before_vm_state, after_vm_state, observation_id, observed_at, committed_at)
             select e, u, h, 'stopped', 'stopped', ${PowerState.RUNNING}, ${PowerState.SHUTOFF}, 'active', 'shutoff', gen_random_uuid(), $4, now()
               from unnest($1::uuid[], $2::uuid[], $3::text[]) as t(e, u, h)`,
            [chunk.map(() => randomUUID()), chunk, chunk.map((_, i) => hostOf(start + i)), at],
          );
        }
        await client.query('commit');
      }
      return (ROWS / (performance.now() - t0)) * 1000;
    };
    const runs: WriterRun[] = [];
    for (const batchSize of BATCH_SIZES) {
      if (context.remainingMs() < 70_000) break;
      // The limit it is compared with (the issue's: update + audit row + outbox row per change, one
      // transaction), measured just before it: the machine's load drifts.
      const adjacentLimit = await limit('update+audit+outbox');
      await resetRows(db);
      await channel.purgeQueue(Queue.auditSubscriber);
      const messages = observationsFor(uuids);
      const publishMs = await publishConfirmed(channel, Exchange.observations, messages);
      const queued = (await channel.checkQueue(Queue.stateWriter)).messageCount;
      if (queued !== PRELOAD_MESSAGES) throw new Error(`expected ${PRELOAD_MESSAGES} messages of observations queued, found ${queued}`);
      context.progress(`batch size ${batchSize}: ${ROWS} observations queued in ${fmt(publishMs)} ms; starting the writer`);

      // The writer's log is its account of each commit: time it as it happens.
      const batches: Array<{ at: number; changes: number; durationMs: number }> = [];
      let committed = 0;
      const recordBatch = (changes: number, durationMs: number): void => {
        batches.push({ at: performance.now(), changes, durationMs });
        committed += changes;
      };
      const log = pino(
        { level: 'info' },
        {
          write(line: string) {
            const entry = JSON.parse(line) as { msg?: string; changes?: number; durationMs?: number };
            if (entry.msg === 'batch committed') recordBatch(entry.changes ?? 0, entry.durationMs ?? 0);
          },
        },
      );
      const config = loadConfig(stateWriterEnv, { DATABASE_URL: url, AMQP_URL: amqpUrl, WRITER_BATCH_SIZE: String(batchSize), LOG_LEVEL: 'info', ...MAX_IN_FLIGHT_ENV });
      const writerDb = createDatabase({ url, log });
      const bus = connectBus({ url: amqpUrl, name: 'bench writer', log });
      const cpuWindow = startCpuWindow(() => new Map([['writer (this process)', process.pid]]));
      const t0 = performance.now();
      const writer = await startService(stateWriter, { config, db: writerDb, bus, log });
      try {
        await waitFor(`${ROWS} changes committed`, () => committed >= ROWS, { timeoutMs: RUN_TIMEOUT_MS, intervalMs: 5 });
        const lastCommit = batches.at(-1)?.at ?? performance.now();
        const cpu = cpuWindow.stop();
        await waitFor('every change event published', async () => (await countUnpublished(db)) === 0, { timeoutMs: RUN_TIMEOUT_MS, intervalMs: 20 });
        const publishedAt = performance.now();
        const first = batches[0];
        runs.push({
          batchSize,
          publishMs,
          commitMs: lastCommit - t0,
          steadyMs: lastCommit - ((first?.at ?? t0) - (first?.durationMs ?? 0)),
          publishedMs: publishedAt - t0,
          batches: batches.length,
          changes: committed,
          meanBatchMs: batches.reduce((total, b) => total + b.durationMs, 0) / Math.max(1, batches.length),
          cpu,
          adjacentLimit,
        });
      } finally {
        await writer.stop();
        await bus.close();
        await writerDb.destroy();
      }
      const outbox = Number((await sql<{ n: string }>`select count(*) as n from change_outbox`.execute(db)).rows[0]?.n);
      const shutoff = Number((await sql<{ n: string }>`select count(*) as n from instances where power_state = ${PowerState.SHUTOFF} and vm_state = 'shutoff'`.execute(db)).rows[0]?.n);
      if (outbox !== ROWS || shutoff !== ROWS) throw new Error(`batch size ${batchSize}: ${outbox} outbox rows and ${shutoff} rows changed, expected ${ROWS} of each`);
      context.progress(`batch size ${batchSize}: ${ROWS} committed in ${fmt(runs.at(-1)?.commitMs ?? 0)} ms`);
    }

    const limits = {
      update: await limit('update'),
      updateOutbox: await limit('update+outbox'),
      updateAuditOutbox: await limit('update+audit+outbox'),
      lockUpdateOutbox: await limit('lock+update+outbox'),
    };
    // The writer's transaction code alone: applyObservations on parsed observations, no bus.
    await resetRows(db);
    const parsed = observationObjects(uuids);
    const writerPolicy = loadConfig(stateWriterEnv, { DATABASE_URL: url, AMQP_URL: amqpUrl }).policy;
    const tApply = performance.now();
    for (let start = 0; start < ROWS; start += DEFAULT_BATCH_SIZE) {
      await applyObservations(db, parsed.slice(start, start + DEFAULT_BATCH_SIZE), writerPolicy);
    }
    const applyPerS = (ROWS / (performance.now() - tApply)) * 1000;
    await resetRows(db);
    const tAuto = performance.now();
    for (let i = 0; i < AUTOCOMMIT_ROWS; i++) {
      await client.query('update instances set power_state = $1, vm_state = $2, power_state_updated_at = now(), updated_at = now() where uuid = $3', [PowerState.SHUTOFF, 'shutoff', uuids[i]]);
    }
    const autocommitPerS = (AUTOCOMMIT_ROWS / (performance.now() - tAuto)) * 1000;
    context.progress('PostgreSQL limits measured');

    // RabbitMQ limits on a scratch quorum queue: publish (confirms, window) and consume (manual ack).
    const scratch = `bench.scratch.${randomUUID()}`;
    await channel.assertQueue(scratch, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    context.defer('delete scratch queue', () => channel.deleteQueue(scratch).catch(() => undefined));
    // ROWS messages of one observation each: the broker's rate per message.
    const single = observationsFor(uuids.slice(0, 1))[0]?.body ?? Buffer.alloc(0);
    const messages = Array.from({ length: ROWS }, () => ({ routingKey: scratch, body: single }));
    const publishScratchMs = await publishConfirmed(channel, '', messages);
    const consumer = await connection.createChannel();
    await consumer.prefetch(CONSUME_PREFETCH);
    let consumed = 0;
    const tConsume = performance.now();
    const { consumerTag } = await consumer.consume(scratch, (message) => {
      if (message === null) return;
      consumer.ack(message);
      consumed++;
    });
    await waitFor(`${ROWS} scratch messages consumed`, () => consumed >= ROWS, { timeoutMs: RUN_TIMEOUT_MS, intervalMs: 5 });
    const consumeMs = performance.now() - tConsume;
    await consumer.cancel(consumerTag);
    await consumer.close();
    await channel.deleteQueue(scratch);

    printTable(
      `State writer: ${ROWS} observations preloaded, every one a change, ${OBSERVATIONS_PER_SYNC} to a message (in-process)`,
      ['WRITER_BATCH_SIZE', 'committed in', 'changes/s', 'steady changes/s', 'batches', 'mean batch', 'all published in', 'PG limit just before (update+audit+outbox)', 'share of it'],
      runs.map((run) => [
        String(run.batchSize),
        `${fmt(run.commitMs)} ms`,
        fmt((run.changes / run.commitMs) * 1000, 0),
        fmt((run.changes / run.steadyMs) * 1000, 0),
        String(run.batches),
        `${fmt(run.meanBatchMs, 1)} ms`,
        `${fmt(run.publishedMs)} ms`,
        `${fmt(run.adjacentLimit, 0)} rows/s`,
        `${fmt(((run.changes / run.commitMs) * 1000 * 100) / run.adjacentLimit, 0)} %`,
      ]),
    );
    printTable(
      'CPU used while committing (seconds of CPU per second of wall time; the machine has ' + os.cpus().length + ' cores)',
      ['WRITER_BATCH_SIZE', ...(runs[0]?.cpu.rows.map((row) => row.name) ?? [])],
      runs.map((run) => [String(run.batchSize), ...run.cpu.rows.map((row) => fmt(row.cpuSeconds / run.cpu.wallSeconds, 2))]),
    );
    printTable(
      'Limits re-measured in this run',
      ['component', 'operation', 'rate'],
      [
        ['PostgreSQL', `UPDATE … FROM unnest, ${LIMIT_CHUNK} rows/statement, one tx each`, `${fmt(limits.update, 0)} rows/s`],
        ['PostgreSQL', '  + one outbox row per change, same tx', `${fmt(limits.updateOutbox, 0)} rows/s`],
        ['PostgreSQL', '  + one outbox row and one audit row per change, same tx (the issue\'s reference)', `${fmt(limits.updateAuditOutbox, 0)} rows/s`],
        ['PostgreSQL', '  + SELECT … FOR UPDATE first (the writer\'s statements)', `${fmt(limits.lockUpdateOutbox, 0)} rows/s`],
        ['writer code', `applyObservations alone (no bus, no relay), ${DEFAULT_BATCH_SIZE} per call`, `${fmt(applyPerS, 0)} changes/s`],
        ['PostgreSQL', 'one autocommitted UPDATE per row', `${fmt(autocommitPerS, 0)} rows/s`],
        ['RabbitMQ', `publish to quorum queue, confirms, window ${PUBLISH_WINDOW}`, `${fmt((ROWS / publishScratchMs) * 1000, 0)} msg/s`],
        ['RabbitMQ', `publish via topic exchange to the writer's quorum queue (${OBSERVATIONS_PER_SYNC} observations each)`, `${fmt((PRELOAD_MESSAGES / (runs[0]?.publishMs ?? Number.NaN)) * 1000, 0)} msg/s`],
        ['RabbitMQ', `consume quorum queue, manual ack, prefetch ${CONSUME_PREFETCH}`, `${fmt((ROWS / consumeMs) * 1000, 0)} msg/s`],
      ],
    );

    const headline = runs.find((run) => run.batchSize === DEFAULT_BATCH_SIZE) ?? runs[0];
    if (headline === undefined) throw new Error('no writer run finished');
    const headlineRate = (headline.changes / headline.commitMs) * 1000;
    console.log(`headline: WRITER_BATCH_SIZE=${headline.batchSize} (the default); target >= 10,000 changes/s and >= 50 % of the PostgreSQL limit with the audit and outbox rows`);
    console.log(`  (the writer writes the outbox row in its transaction; the audit subscriber writes the audit row in its own, not running here)`);
    console.log(`load average at the end: ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}`);
    context.result('writer-changes-per-s', headlineRate, 'changes/s');
    for (const run of runs) context.result(`writer-changes-per-s-b${run.batchSize}`, (run.changes / run.commitMs) * 1000, 'changes/s');
    context.result('writer-share-of-pg-limit', (headlineRate / headline.adjacentLimit) * 100, '%');
    context.result('writer-pg-limit-rows-per-s', headline.adjacentLimit, 'rows/s');
    context.result('writer-share-of-pg-update-outbox-limit', (headlineRate / limits.updateOutbox) * 100, '%');
    context.result('writer-pg-autocommit-rows-per-s', autocommitPerS, 'rows/s');
    context.result('writer-apply-alone-changes-per-s', applyPerS, 'changes/s');
  },
);
