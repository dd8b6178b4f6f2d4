/**
 * Two tick producers, each its own process: exactly one publishes; kill -9 the leader
 * and the standby takes over within one interval, continuing the same schedule, so no
 * host is ticked twice for a slot and none misses more than one tick.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Message } from 'amqplib';
import { Exchange } from '../../../../shared/bus/topology.ts';
import { parseMessage } from '../../../../shared/messages/codec.ts';
import { type Tick, tickSchema } from '../../../../shared/messages/tick.ts';
import { type ServiceProcess, startServiceProcess } from '../../../../tools/demo/service-process.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../../helpers/bus-probe.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';
import { createTestVhost, type TestVhost } from '../../../../tools/local-env/vhost.ts';

const INTERVAL_MS = 1_000;
const HOSTS = ['fo-a', 'fo-b', 'fo-c', 'fo-d', 'fo-e', 'fo-f'];
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let logDir: string;
const producers: ServiceProcess[] = [];
const becameLeaderAt = new Map<string, number>();
/** What arrived for each host's binding. */
const collected: Message[][] = [];

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  logDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-failover-'));
  await database.db.insertInto('compute_hosts').values(HOSTS.map((host) => ({ host }))).execute();
  for (const host of HOSTS) collected.push(await probe.collect(Exchange.ticks, host));
  for (const name of ['p1', 'p2']) {
    producers.push(
      startServiceProcess({
        service: 'tick-producer',
        instance: name,
        env: { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, TICK_INTERVAL_MS: String(INTERVAL_MS), LOG_LEVEL: 'info' },
        logDir,
        onLogLine: (entry) => {
          if (entry.msg === 'became leader') becameLeaderAt.set(name, Date.now());
        },
      }),
    );
  }
});

after(async () => {
  for (const producer of producers) await producer.stop();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
  if (logDir !== undefined) await rm(logDir, { recursive: true, force: true });
});

function ticks(): Tick[] {
  return collected.flat().flatMap((message) => {
    const parsed = parseMessage(tickSchema, message.content);
    return parsed.ok ? [parsed.value] : [];
  });
}

test('one leader publishes; after kill -9 the standby continues the schedule within one interval', async () => {
  // Two tsx processes starting at once on a loaded machine can take well over 10 s.
  await waitFor('a leader', () => becameLeaderAt.size === 1, { timeoutMs: 45_000 });
  await waitFor('two intervals of ticks', () => ticks().length >= 2 * HOSTS.length, { timeoutMs: 10_000 });
  const [leaderName] = [...becameLeaderAt.keys()];
  const leader = producers.find((p) => p.name === `tick-producer-${leaderName}`) as ServiceProcess;

  const killedAt = Date.now();
  await leader.kill('SIGKILL');
  await waitFor('the standby to take over', () => becameLeaderAt.size === 2, { timeoutMs: 5 * INTERVAL_MS });
  const takeoverMs = Math.max(...becameLeaderAt.values()) - killedAt;
  assert.ok(takeoverMs <= INTERVAL_MS, `standby took over after ${takeoverMs} ms, more than one interval`);

  const countAtTakeover = ticks().length;
  await waitFor('two more intervals of ticks', () => ticks().length >= countAtTakeover + 2 * HOSTS.length, { timeoutMs: 10_000 });

  for (const host of HOSTS) {
    const slots = ticks()
      .filter((tick) => tick.host === host)
      .map((tick) => Date.parse(tick.scheduledAt))
      .sort((a, b) => a - b);
    assert.equal(new Set(slots).size, slots.length, `${host}: a slot ticked twice`);
    for (let i = 1; i < slots.length; i++) {
      const gap = (slots[i] as number) - (slots[i - 1] as number);
      assert.ok(gap === INTERVAL_MS || gap === 2 * INTERVAL_MS, `${host}: ${gap} ms between ticks (one interval, or two if one was missed)`);
    }
  }
});
