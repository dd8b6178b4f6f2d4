/**
 * A plain amqplib connection for tests to publish raw bytes and read queues, independent
 * of the code under test.
 */
import amqplib, { type Channel, type ChannelModel, type Message } from 'amqplib';
import { declareCoreTopology } from '../../shared/bus/topology.ts';
import { waitFor } from '../../tools/wait-for.ts';

export interface BusProbe {
  channel: Channel;
  publish(exchange: string, routingKey: string, body: Buffer | object, headers?: Record<string, unknown>): void;
  /** Binds a fresh exclusive queue to `exchange` with `pattern` and collects what arrives. */
  collect(exchange: string, pattern: string): Promise<Message[]>;
  /** Waits until `queue` holds `count` ready messages, then takes them (acked). */
  drain(queue: string, count: number, timeoutMs?: number): Promise<Message[]>;
  messageCount(queue: string): Promise<number>;
  close(): Promise<void>;
}

export async function openBusProbe(amqpUrl: string): Promise<BusProbe> {
  const connection: ChannelModel = await amqplib.connect(amqpUrl);
  // Fault tests close every connection of the vhost, this one included: that is not the test failing.
  connection.on('error', () => undefined);
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  await declareCoreTopology(channel);
  return {
    channel,
    publish(exchange, routingKey, body, headers) {
      const content = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
      channel.publish(exchange, routingKey, content, { persistent: true, headers });
    },
    async collect(exchange, pattern) {
      const received: Message[] = [];
      const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      await channel.bindQueue(queue, exchange, pattern);
      await channel.consume(queue, (message) => message && received.push(message), { noAck: true });
      return received;
    },
    async drain(queue, count, timeoutMs = 10_000) {
      await waitFor(`${count} messages in ${queue}`, async () => (await channel.checkQueue(queue)).messageCount >= count, { timeoutMs });
      const taken: Message[] = [];
      for (let message = await channel.get(queue); message !== false; message = await channel.get(queue)) {
        channel.ack(message);
        taken.push(message);
      }
      return taken;
    },
    async messageCount(queue) {
      return (await channel.checkQueue(queue)).messageCount;
    },
    async close() {
      await channel.close().catch(() => undefined);
      await connection.close().catch(() => undefined);
    },
  };
}
