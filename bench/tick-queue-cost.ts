/**
 * What a compute host costs the broker: its tick queue (in each candidate shape, holding the
 * one tick it keeps) and its agent's connection, read from RabbitMQ's own memory breakdown
 * (management API /api/nodes/<node>/memory: queue_procs + mnesia for queues, the connection_*
 * categories for connections) before and after, on a vhost of its own, on the machine's broker.
 * Also times declaring the queues one at a time, as agents do when they start.
 *
 *   npm run bench:tick-queue-cost            (TICK_QUEUES=1000 TICK_CONNECTIONS=200 by default)
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import amqplib from 'amqplib';
import { z } from 'zod';
import { type BenchContext, runBench } from './lib/harness.ts';
import { createBenchVhost } from './lib/resources.ts';
import { printTable } from './lib/table.ts';

const QUEUES = Number(process.env.TICK_QUEUES ?? 1_000);
const CONNECTIONS = Number(process.env.TICK_CONNECTIONS ?? 200);
const MANAGEMENT = 'http://127.0.0.1:15672/api';
const AUTH = `Basic ${Buffer.from('guest:guest').toString('base64')}`;

/** The candidate tick-queue shapes; the first is what virtsync declares today (declareTickQueue). */
const SHAPES: Record<string, amqplib.Options.AssertQueue> = {
  'classic durable, max-length 1 (today)': { durable: true, arguments: { 'x-max-length': 1, 'x-overflow': 'drop-head' } },
  'classic non-durable, max-length 1': { durable: false, arguments: { 'x-max-length': 1, 'x-overflow': 'drop-head' } },
  'classic durable lazy, max-length 1': { durable: true, arguments: { 'x-max-length': 1, 'x-overflow': 'drop-head', 'x-queue-mode': 'lazy' } },
};

const memorySchema = z.object({ memory: z.record(z.string(), z.unknown()) });
async function brokerMemory(): Promise<Record<string, number>> {
  const nodes = z.array(z.object({ name: z.string() })).parse(await (await fetch(`${MANAGEMENT}/nodes`, { headers: { authorization: AUTH } })).json());
  const { memory } = memorySchema.parse(await (await fetch(`${MANAGEMENT}/nodes/${nodes[0]?.name}/memory`, { headers: { authorization: AUTH } })).json());
  return Object.fromEntries(Object.entries(memory).flatMap(([key, value]) => (typeof value === 'number' ? [[key, value]] : [])));
}

const sum = (memory: Record<string, number>, keys: readonly string[]): number => keys.reduce((total, key) => total + (memory[key] ?? 0), 0);
const QUEUE_KEYS = ['queue_procs', 'mnesia', 'msg_index', 'metadata_store'];
const CONNECTION_KEYS = ['connection_readers', 'connection_writers', 'connection_channels', 'connection_other'];

async function measureShape(amqpUrl: string, shape: amqplib.Options.AssertQueue): Promise<{ kbPerQueue: number; declareMs: number }> {
  const connection = await amqplib.connect(amqpUrl);
  const channel = await connection.createConfirmChannel();
  const exchange = `bench.ticks.${randomUUID().slice(0, 8)}`;
  await channel.assertExchange(exchange, 'direct', { durable: false, autoDelete: false });
  const names = Array.from({ length: QUEUES }, (_, i) => `bench.tick.host-${String(i).padStart(5, '0')}`);
  await sleep(2_000);
  const before = await brokerMemory();
  const started = performance.now();
  for (const name of names) {
    await channel.assertQueue(name, shape);
    await channel.bindQueue(name, exchange, name);
  }
  const declareMs = performance.now() - started;
  const tick = Buffer.from(JSON.stringify({ schemaVersion: 1, tickId: randomUUID(), host: 'host-00000', cycle: 1, scheduledAt: new Date().toISOString(), trigger: 'periodic' }));
  for (const name of names) channel.publish(exchange, name, tick, { persistent: true, contentType: 'application/json' });
  await channel.waitForConfirms();
  await sleep(2_000);
  const after = await brokerMemory();
  for (const name of names) await channel.deleteQueue(name);
  await channel.deleteExchange(exchange);
  await connection.close();
  return { kbPerQueue: (sum(after, QUEUE_KEYS) - sum(before, QUEUE_KEYS)) / QUEUES / 1024, declareMs };
}

async function measureConnections(amqpUrl: string): Promise<number> {
  await sleep(2_000);
  const before = await brokerMemory();
  const connections: amqplib.ChannelModel[] = [];
  // Like an agent: one connection, a publishing confirm channel and a consuming channel on its tick queue.
  for (let i = 0; i < CONNECTIONS; i++) {
    const connection = await amqplib.connect(amqpUrl);
    await connection.createConfirmChannel();
    const consumer = await connection.createChannel();
    const { queue } = await consumer.assertQueue('', { exclusive: true });
    await consumer.consume(queue, () => undefined);
    connections.push(connection);
  }
  await sleep(2_000);
  const after = await brokerMemory();
  for (const connection of connections) await connection.close();
  return (sum(after, CONNECTION_KEYS) - sum(before, CONNECTION_KEYS)) / CONNECTIONS / 1024;
}

await runBench(
  { name: 'tick-queue-cost', deadlineMs: 600_000, inputs: { queues: QUEUES, connections: CONNECTIONS, shapes: Object.keys(SHAPES).length } },
  async (context: BenchContext) => {
    const vhost = await createBenchVhost(context);
    const rows: string[][] = [];
    for (const [name, shape] of Object.entries(SHAPES)) {
      context.progress(`declaring ${QUEUES} queues: ${name}`);
      const { kbPerQueue, declareMs } = await measureShape(vhost.amqpUrl, shape);
      rows.push([name, kbPerQueue.toFixed(1), (declareMs / QUEUES).toFixed(2), (declareMs / 1000).toFixed(1)]);
      context.result(`queue-kb ${name}`, kbPerQueue, 'KB');
    }
    printTable('tick queue cost', ['tick queue shape', 'KB per queue (with its tick)', 'ms to declare + bind one', `s for ${QUEUES}`], rows);
    context.progress(`opening ${CONNECTIONS} agent-like connections`);
    const kbPerConnection = await measureConnections(vhost.amqpUrl);
    context.result('connection-kb', kbPerConnection, 'KB');
  },
);
