/**
 * Issue 14, part 3: the cheapest way to publish committed changes that still loses nothing
 * and keeps per-change routing (`instance.<host>.<state>`). The same change events, in
 * batches of the writer's default size, published each way into a vhost of its own whose
 * `instance.#` binding leads to the audit subscriber's queue, then drained by one consumer
 * as the audit subscriber reads them (prefetch of a batch, one multiple-ack per batch):
 *   as-shipped        the writer's relay: the kit's confirm channel (amqp-connection-manager),
 *                     one publish promise per change, awaited together per batch
 *   one-confirm-wait  amqplib's confirm channel: a batch published, then one waitForConfirms
 *   stream            as one-confirm-wait, into a RabbitMQ stream (x-queue-type stream) read
 *                     from an offset, instead of the quorum queue
 * Publish and drain are timed apart, with the CPU of this process and of RabbitMQ for each.
 * Variants alternate over `rounds` so drift on the machine hits them alike; medians printed.
 *
 *   npm run bench:change-publish [-- --events N --rounds N]
 */
import { parseArgs } from 'node:util';
import amqplib, { type Channel, type ChannelModel } from 'amqplib';
import { connectBus } from '../shared/bus/connect.ts';
import { createPublisher, publishJson } from '../shared/bus/publisher.ts';
import { declareCoreTopology, Exchange, Queue } from '../shared/bus/topology.ts';
import { changeEventSchema } from '../shared/messages/change-event.ts';
import { encodeMessage } from '../shared/messages/codec.ts';
import { changeEventFor, routingKeyOf } from '../tools/fixtures/change-events.ts';
import { runBench } from './lib/harness.ts';
import { cpuSecondsByCommand } from './lib/proc-stats.ts';
import { benchLogger, createBenchVhost } from './lib/resources.ts';
import { fmt, median } from './lib/stats.ts';
import { printTable } from './lib/table.ts';

const { values } = parseArgs({ options: { events: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '3' } } });
const EVENTS = Number(values.events);
const ROUNDS = Number(values.rounds);
/** WRITER_BATCH_SIZE's default: the relay publishes a committed batch at a time. */
const BATCH = 500;
const HOSTS = 50;

const VARIANTS = ['as-shipped', 'one-confirm-wait', 'stream'] as const;
type Variant = (typeof VARIANTS)[number];

interface Phase {
  ms: number;
  benchCpuS: number;
  brokerCpuS: number;
}

const events: Array<{ routingKey: string; eventId: string; body: Buffer }> = Array.from({ length: EVENTS }, (_, i) => {
  const event = changeEventFor(`bench-change-${String(i % HOSTS).padStart(2, '0')}`);
  return { routingKey: routingKeyOf(event), eventId: event.eventId, body: encodeMessage(changeEventSchema, event) };
});
const batches = Array.from({ length: Math.ceil(EVENTS / BATCH) }, (_, i) => events.slice(i * BATCH, (i + 1) * BATCH));

async function timed(run: () => Promise<void>): Promise<Phase> {
  const broker = (): number => cpuSecondsByCommand(['beam.smp']).get('beam.smp') ?? 0;
  const [brokerBefore, benchBefore, started] = [broker(), process.cpuUsage(), performance.now()];
  await run();
  const bench = process.cpuUsage(benchBefore);
  return { ms: performance.now() - started, benchCpuS: (bench.user + bench.system) / 1e6, brokerCpuS: broker() - brokerBefore };
}

/** The audit subscriber's queue as declared in production, or a stream in its place. */
async function declareTopology(channel: Channel, variant: Variant): Promise<void> {
  if (variant !== 'stream') return declareCoreTopology(channel);
  await channel.assertExchange(Exchange.changes, 'topic', { durable: true });
  await channel.assertQueue(Queue.auditSubscriber, { durable: true, arguments: { 'x-queue-type': 'stream' } });
  await channel.bindQueue(Queue.auditSubscriber, Exchange.changes, 'instance.#');
}

async function publish(amqpUrl: string, connection: ChannelModel, variant: Variant): Promise<void> {
  if (variant === 'as-shipped') {
    const bus = connectBus({ url: amqpUrl, name: 'bench relay', log: benchLogger });
    const publisher = createPublisher(bus, { name: 'bench relay', log: benchLogger, setup: declareCoreTopology });
    try {
      await publisher.waitForConnect();
      for (const batch of batches) {
        await Promise.all(batch.map((event) => publishJson(publisher, Exchange.changes, event.routingKey, event.body, { messageId: event.eventId, type: 'instance-change' })));
      }
    } finally {
      await publisher.close();
      await bus.close();
    }
    return;
  }
  const channel = await connection.createConfirmChannel();
  for (const batch of batches) {
    for (const event of batch) {
      channel.publish(Exchange.changes, event.routingKey, event.body, {
        persistent: true,
        contentType: 'application/json',
        messageId: event.eventId,
        type: 'instance-change',
        timestamp: Math.floor(Date.now() / 1000),
      });
    }
    await channel.waitForConfirms();
  }
  await channel.close();
}

/** Reads every event as the audit subscriber does: a batch in flight, one ack for it. */
async function drain(connection: ChannelModel, variant: Variant): Promise<void> {
  const channel = await connection.createChannel();
  await channel.prefetch(BATCH);
  let received = 0;
  await new Promise<void>((resolve, reject) => {
    void channel
      .consume(
        Queue.auditSubscriber,
        (message) => {
          if (message === null) return reject(new Error('consumer cancelled by the broker'));
          received++;
          if (received % BATCH === 0 || received === EVENTS) channel.ack(message, true);
          if (received === EVENTS) resolve();
        },
        variant === 'stream' ? { arguments: { 'x-stream-offset': 'first' } } : {},
      )
      .catch(reject);
  });
  await channel.close();
}

await runBench({ name: 'change-publish', deadlineMs: 900_000, inputs: { events: EVENTS, batch: BATCH, rounds: ROUNDS } }, async (context) => {
  const results = new Map<Variant, { publish: Phase[]; drain: Phase[] }>(VARIANTS.map((variant) => [variant, { publish: [], drain: [] }]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const variant of VARIANTS) {
      context.progress(`round ${round}: ${variant}`);
      const { amqpUrl } = await createBenchVhost(context);
      const connection = await amqplib.connect(amqpUrl);
      try {
        const setup = await connection.createChannel();
        await declareTopology(setup, variant);
        await setup.close();
        const result = results.get(variant);
        result?.publish.push(await timed(() => publish(amqpUrl, connection, variant)));
        result?.drain.push(await timed(() => drain(connection, variant)));
      } finally {
        await connection.close();
      }
    }
  }

  const row = (label: string, phases: readonly Phase[]): string[] => {
    const ms = median(phases.map((phase) => phase.ms));
    return [
      label,
      `${fmt((EVENTS / ms) * 1000, 0)} /s`,
      `${fmt((median(phases.map((phase) => phase.brokerCpuS)) / EVENTS) * 1e6, 0)} µs`,
      `${fmt((median(phases.map((phase) => phase.benchCpuS)) / EVENTS) * 1e6, 0)} µs`,
    ];
  };
  printTable(
    `${EVENTS} change events, batches of ${BATCH}, median of ${ROUNDS} rounds (CPU per event)`,
    ['variant, phase', 'rate', 'RabbitMQ CPU', 'client CPU'],
    VARIANTS.flatMap((variant) => {
      const result = results.get(variant);
      return result === undefined ? [] : [row(`${variant}, publish`, result.publish), row(`${variant}, drain`, result.drain)];
    }),
  );
  for (const variant of VARIANTS) {
    const result = results.get(variant);
    if (result === undefined) continue;
    context.result(`change-publish-${variant}-per-s`, (EVENTS / median(result.publish.map((phase) => phase.ms))) * 1000, 'events/s');
    const brokerCpu = median(result.publish.map((phase) => phase.brokerCpuS)) + median(result.drain.map((phase) => phase.brokerCpuS));
    context.result(`change-publish-${variant}-broker-cpu-us`, (brokerCpu / EVENTS) * 1e6, 'µs of RabbitMQ CPU per event, publish + drain');
  }
});
