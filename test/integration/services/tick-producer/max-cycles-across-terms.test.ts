/**
 * TICK_MAX_CYCLES counts intervals of the schedule, not leadership terms: the leader's
 * lock connection is terminated by PostgreSQL mid-run (as in a database restart), the
 * producer loses and retakes the lock, and the host still gets exactly the configured
 * number of ticks, in consecutive cycles, and the run ends when its cycles are over.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { Message } from 'amqplib';
import { sql } from 'kysely';
import { tickProducer } from '../../../../services/tick-producer/tick-producer.ts';
import { type BusConnection, connectBus } from '../../../../shared/bus/connect.ts';
import { Exchange } from '../../../../shared/bus/topology.ts';
import { loadConfig, tickProducerEnv } from '../../../../shared/config.ts';
import { parseMessage } from '../../../../shared/messages/codec.ts';
import { type Tick, tickSchema } from '../../../../shared/messages/tick.ts';
import { type RunningService, startService } from '../../../../shared/service-runner.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../../helpers/bus-probe.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';
import { testLogger } from '../../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../../tools/local-env/vhost.ts';

const INTERVAL_MS = 1_000;
const CYCLES = 4;
const HOST = `terms-${Date.now().toString(36)}`;
const LOCK = 'virtsync.tick-producer';
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let bus: BusConnection | undefined;
let producer: RunningService | undefined;
let received: Message[] = [];

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  await database.db.insertInto('compute_hosts').values({ host: HOST }).execute();
  received = await probe.collect(Exchange.ticks, HOST);
  bus = connectBus({ url: vhost.amqpUrl, name: 'test tick-producer', log: testLogger });
  const config = loadConfig(tickProducerEnv, {
    DATABASE_URL: database.url,
    AMQP_URL: vhost.amqpUrl,
    TICK_INTERVAL_MS: String(INTERVAL_MS),
    TICK_MAX_CYCLES: String(CYCLES),
  });
  producer = await startService(tickProducer, { config, db: database.db, bus, log: testLogger });
});

after(async () => {
  await producer?.stop();
  await bus?.close();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
});

/** Backend pids of the leader lock's connection. */
async function lockBackends(): Promise<number[]> {
  const { rows } = await sql<{ pid: number }>`
    select pid from pg_stat_activity where datname = current_database() and application_name = ${`virtsync ${LOCK}`}`.execute(database.db);
  return rows.map((row) => row.pid);
}

function ticks(): Tick[] {
  return received.flatMap((message) => {
    const parsed = parseMessage(tickSchema, message.content);
    return parsed.ok ? [parsed.value] : [];
  });
}

test('a lost and retaken lock neither restarts the count nor ticks a cycle twice', { timeout: 60_000 }, async () => {
  await waitFor('the first tick', () => ticks().length >= 1, { timeoutMs: 10_000 });
  const [lockPid] = await lockBackends();
  assert.ok(lockPid !== undefined, 'the lock connection to terminate');
  await sql`select pg_terminate_backend(${lockPid})`.execute(database.db);
  await waitFor('the lock to be retaken on a new connection', async () => (await lockBackends()).some((pid) => pid !== lockPid), { timeoutMs: 10_000 });

  assert.ok(producer !== undefined);
  await producer.finished;
  await sleep(300); // deliveries to this test's own queue
  const cycles = ticks().map((tick) => tick.cycle);
  assert.ok(cycles.length <= CYCLES, `${cycles.length} ticks for ${CYCLES} cycles: ${cycles.join(', ')}`);
  assert.ok(cycles.length >= CYCLES - 1, `at most the slot during the takeover is missed: ${cycles.join(', ')}`);
  assert.equal(new Set(cycles).size, cycles.length, `a cycle ticked twice: ${cycles.join(', ')}`);
  const first = cycles[0] ?? 0;
  assert.ok(cycles.every((cycle) => cycle >= first && cycle < first + CYCLES), `cycles ${cycles.join(', ')} beyond ${CYCLES} intervals`);
});
