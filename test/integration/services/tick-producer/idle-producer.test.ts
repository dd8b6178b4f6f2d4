/**
 * A tick producer process started on an empty compute_hosts (a fresh install): it sleeps
 * instead of spinning (its CPU time, read from /proc, stays near zero and it logs one
 * interval line per interval), and a host inserted later is ticked within one interval,
 * then at its slot in the following cycles.
 */
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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

const INTERVAL_MS = 2_000;
const IDLE_MS = 4_000;
const HOST = `idle-${Date.now().toString(36)}`;
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let logDir: string;
let producer: ServiceProcess | undefined;
let leading = false;
let intervalLines = 0;
let received: Message[] = [];

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  logDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-idle-'));
  received = await probe.collect(Exchange.ticks, HOST);
  producer = startServiceProcess({
    service: 'tick-producer',
    env: { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, TICK_INTERVAL_MS: String(INTERVAL_MS), LOG_LEVEL: 'info' },
    logDir,
    onLogLine: (entry) => {
      if (entry.msg === 'leading: publishing ticks') leading = true;
      if (entry.msg === 'tick interval published') intervalLines++;
    },
  });
});

after(async () => {
  await producer?.stop();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
  if (logDir !== undefined) await rm(logDir, { recursive: true, force: true });
});

/** User plus system CPU time of a process so far, from /proc/<pid>/stat (clock ticks of 10 ms). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function ticks(): Tick[] {
  return received.flatMap((message) => {
    const parsed = parseMessage(tickSchema, message.content);
    return parsed.ok ? [parsed.value] : [];
  });
}

test('with no hosts the leader sleeps: CPU near zero, one interval line per interval', { timeout: 60_000 }, async (t) => {
  await waitFor('the producer to lead', () => leading, { timeoutMs: 20_000 });
  const pid = producer?.pid;
  assert.ok(pid !== undefined);
  await sleep(500); // past start-up work (the first host read, topology)
  const linesBefore = intervalLines;
  const cpuBefore = await cpuSeconds(pid);
  await sleep(IDLE_MS);
  const cpuUsed = (await cpuSeconds(pid)) - cpuBefore;
  const lines = intervalLines - linesBefore;
  t.diagnostic(`idle producer: ${cpuUsed.toFixed(2)} s CPU and ${lines} interval lines in ${IDLE_MS} ms`);
  // A spinning leader burns the whole idle time (4 s of CPU); a sleeping one a few timers and queries.
  assert.ok(cpuUsed < 0.5, `idle producer used ${cpuUsed.toFixed(2)} s CPU in ${IDLE_MS} ms`);
  assert.ok(lines <= IDLE_MS / INTERVAL_MS + 1, `${lines} 'tick interval published' lines in ${IDLE_MS} ms`);
  assert.deepEqual(ticks(), []);
});

test('a host inserted later is ticked within one interval, then once per cycle', { timeout: 60_000 }, async (t) => {
  const insertedAtMs = Date.now();
  await database.db.insertInto('compute_hosts').values({ host: HOST }).execute();
  await waitFor('the new host to be ticked', () => ticks().length >= 1, { timeoutMs: 5 * INTERVAL_MS });
  const latencyMs = Date.now() - insertedAtMs;
  t.diagnostic(`first tick ${latencyMs} ms after the insert (interval ${INTERVAL_MS} ms)`);
  // Picked up within one interval by design; one more second for the broker and database on a shared machine.
  assert.ok(latencyMs <= INTERVAL_MS + 1_000, `first tick ${latencyMs} ms after the insert`);

  await waitFor('two more cycles', () => ticks().length >= 3, { timeoutMs: 5 * INTERVAL_MS });
  const cycles = ticks().map((tick) => tick.cycle);
  assert.deepEqual(cycles.slice(0, 3), [cycles[0], (cycles[0] ?? 0) + 1, (cycles[0] ?? 0) + 2], `cycles ${cycles.join(', ')}`);
});
