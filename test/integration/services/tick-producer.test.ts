/**
 * The tick producer in-process against real PostgreSQL and RabbitMQ, with a short interval
 * and two cycles: every enabled host of compute_hosts gets one tick per cycle at its own
 * slot (disabled hosts none), `finished` resolves after the cycles, and a host's tick
 * queue keeps only its newest tick while nobody consumes it. Assertions are on the ticks'
 * fields, never on when they arrived.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Message } from 'amqplib';
import { tickProducer } from '../../../services/tick-producer/tick-producer.ts';
import { slotOffsetMs } from '../../../services/tick-producer/tick-schedule.ts';
import { type BusConnection, connectBus } from '../../../shared/bus/connect.ts';
import { Exchange, tickQueue } from '../../../shared/bus/topology.ts';
import { loadConfig, tickProducerEnv } from '../../../shared/config.ts';
import { parseMessage } from '../../../shared/messages/codec.ts';
import { type Tick, tickSchema } from '../../../shared/messages/tick.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';
import { type RunningService, startService } from '../../../shared/service-runner.ts';

const INTERVAL_MS = 600;
const CYCLES = 2;

/** Random names whose slots differ, so that "distinct scheduledAt" cannot fail on a hash collision. */
function pickHosts(): { enabled: string[]; disabled: string } {
  for (;;) {
    const suffix = randomBytes(3).toString('hex');
    const enabled = ['a', 'b', 'c'].map((name) => `tick-${name}-${suffix}`);
    if (new Set(enabled.map((host) => slotOffsetMs(host, INTERVAL_MS))).size === enabled.length) {
      return { enabled, disabled: `tick-off-${suffix}` };
    }
  }
}

const hosts = pickHosts();
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let bus: BusConnection | undefined;
let producer: RunningService | undefined;
/** What each host's binding of the ticks exchange received. */
const received = new Map<string, Message[]>();
let startedAtMs = 0;
let finishedAtMs = 0;

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  await database.db
    .insertInto('compute_hosts')
    .values([...hosts.enabled.map((host) => ({ host })), { host: hosts.disabled, enabled: false }])
    .execute();
  for (const host of [...hosts.enabled, hosts.disabled]) received.set(host, await probe.collect(Exchange.ticks, host));

  bus = connectBus({ url: vhost.amqpUrl, name: 'test tick-producer', log: testLogger });
  const config = loadConfig(tickProducerEnv, {
    DATABASE_URL: database.url,
    AMQP_URL: vhost.amqpUrl,
    TICK_INTERVAL_MS: String(INTERVAL_MS),
    TICK_MAX_CYCLES: String(CYCLES),
  });
  startedAtMs = Date.now();
  producer = await startService(tickProducer, { config, db: database.db, bus, log: testLogger });
});

after(async () => {
  await producer?.stop();
  await bus?.close();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
});

function ticksOf(host: string): Tick[] {
  return (received.get(host) ?? []).map((message) => {
    const parsed = parseMessage(tickSchema, message.content);
    if (!parsed.ok) assert.fail(`invalid tick for ${host}: ${parsed.reason}`);
    return parsed.value;
  });
}

describe(`a producer running ${CYCLES} cycles of ${INTERVAL_MS} ms`, () => {
  test('finished resolves after the configured cycles', { timeout: 15_000 }, async () => {
    assert.ok(producer !== undefined);
    await producer.finished;
    finishedAtMs = Date.now();
    // Confirmed before finished resolved; only the delivery to this test's own queues may still be under way.
    await waitFor(
      'every enabled host to have its ticks',
      () => hosts.enabled.every((host) => ticksOf(host).length >= CYCLES),
      { timeoutMs: 5_000 },
    );
  });

  test('each enabled host gets one tick per cycle, in consecutive cycles one interval apart; disabled hosts none', () => {
    assert.deepEqual(ticksOf(hosts.disabled), []);
    for (const host of hosts.enabled) {
      const ticks = ticksOf(host);
      assert.equal(ticks.length, CYCLES, `${host}: one tick per cycle`);
      const [first, second] = ticks;
      assert.ok(first !== undefined && second !== undefined);
      for (const tick of ticks) {
        assert.equal(tick.host, host);
        assert.equal(tick.trigger, 'periodic');
        // A cycle is an interval since the epoch (tick-schedule.ts): the slot lies in its own cycle's window.
        assert.equal(Math.floor(Date.parse(tick.scheduledAt) / INTERVAL_MS), tick.cycle, `${host}: ${tick.scheduledAt} outside cycle ${tick.cycle}`);
      }
      assert.notEqual(first.tickId, second.tickId);
      assert.equal(second.cycle, first.cycle + 1, `${host}: cycles ${first.cycle}, ${second.cycle}`);
      assert.equal(Date.parse(second.scheduledAt) - Date.parse(first.scheduledAt), INTERVAL_MS, `${host}: one interval between its ticks`);
    }
  });

  test('the ticks of one cycle are spread over the interval: distinct slots, all within one interval of the run', () => {
    for (const round of [0, 1]) {
      const slots = hosts.enabled.map((host) => Date.parse(ticksOf(host)[round]?.scheduledAt ?? 'missing'));
      assert.ok(slots.every(Number.isFinite));
      assert.equal(new Set(slots).size, hosts.enabled.length, `round ${round + 1}: every host its own slot`);
      assert.ok(Math.max(...slots) - Math.min(...slots) < INTERVAL_MS, `round ${round + 1}: slots ${slots.join(', ')} span more than one interval`);
      // The producer's window starts when it became leader (after startedAtMs) and ends before finished resolved.
      assert.ok(slots.every((slot) => slot >= startedAtMs + round * INTERVAL_MS && slot <= finishedAtMs), `round ${round + 1}: slots outside the run`);
    }
  });

  test('with nobody consuming, each tick queue holds exactly one message: the newest tick', async () => {
    for (const host of hosts.enabled) {
      assert.equal(await probe.messageCount(tickQueue(host)), 1, tickQueue(host));
      const message = await probe.channel.get(tickQueue(host), { noAck: true });
      assert.ok(message !== false);
      const parsed = parseMessage(tickSchema, message.content);
      assert.ok(parsed.ok);
      const newest = ticksOf(host)[CYCLES - 1];
      assert.equal(parsed.value.tickId, newest?.tickId, `${host}: the queue kept tick of cycle ${parsed.value.cycle}, not the newest`);
    }
  });

  test('stop() after the cycles resolves and is safe twice', async () => {
    assert.ok(producer !== undefined);
    await producer.stop();
    await producer.stop();
  });
});
