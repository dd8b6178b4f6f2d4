/**
 * A plain amqplib connection for tests to publish raw bytes and read queues, independent
 * of the code under test. It reopens itself (trying each node of a comma-separated
 * AMQP_URL in turn) when the broker drops it, so a test that restarts its own broker
 * keeps its probe; `channel` is the current channel.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import amqplib, { type Channel, type ChannelModel, type Message } from 'amqplib';
import { brokerUrls } from '../../shared/bus/broker-urls.ts';
import { declareCoreTopology } from '../../shared/bus/topology.ts';
import { waitFor } from '../../tools/wait-for.ts';

const REOPEN_TIMEOUT_MS = 120_000;

export interface BusProbe {
  /** The current channel; throws while the broker connection is down (see ready()). */
  readonly channel: Channel;
  /** The channel, once the connection is (re)open. */
  ready(): Promise<Channel>;
  publish(exchange: string, routingKey: string, body: Buffer | object, headers?: Record<string, unknown>): void;
  /** Binds a fresh exclusive queue to `exchange` with `pattern` and collects what arrives. */
  collect(exchange: string, pattern: string): Promise<Message[]>;
  /** Waits until `queue` holds `count` ready messages, then takes them (acked). */
  drain(queue: string, count: number, timeoutMs?: number): Promise<Message[]>;
  messageCount(queue: string): Promise<number>;
  close(): Promise<void>;
}

export async function openBusProbe(amqpUrl: string): Promise<BusProbe> {
  const urls = brokerUrls(amqpUrl);
  let current: { connection: ChannelModel; channel: Channel } | undefined;
  let opening: Promise<Channel> | undefined;
  let closed = false;

  const connectOnce = async (): Promise<{ connection: ChannelModel; channel: Channel }> => {
    let lastError: unknown;
    for (const url of urls) {
      try {
        const connection = await amqplib.connect(url);
        // Fault tests close or kill the broker under it: that is not the test failing.
        connection.on('error', () => undefined);
        const channel = await connection.createChannel();
        channel.on('error', () => undefined);
        const opened = { connection, channel };
        // A closed channel (e.g. checkQueue on a missing queue) or connection is reopened on next use.
        const forget = (): void => {
          if (current === opened) current = undefined;
        };
        connection.on('close', forget);
        channel.on('close', forget);
        await declareCoreTopology(channel);
        return opened;
      } catch (err) {
        lastError = err;
      }
    }
    throw new Error(`no broker answered at ${urls.length} URL(s)`, { cause: lastError });
  };
  const open = async (): Promise<Channel> => {
    const deadline = Date.now() + REOPEN_TIMEOUT_MS;
    for (;;) {
      try {
        current = await connectOnce();
        return current.channel;
      } catch (err) {
        if (closed || Date.now() > deadline) throw err;
        await sleep(250);
      }
    }
  };
  const ready = (): Promise<Channel> => {
    if (current !== undefined) return Promise.resolve(current.channel);
    opening ??= open().finally(() => {
      opening = undefined;
    });
    return opening;
  };
  await ready();

  const currentChannel = (): Channel => {
    if (current === undefined) throw new Error('the probe has lost its broker connection; await probe.ready()');
    return current.channel;
  };
  return {
    get channel(): Channel {
      return currentChannel();
    },
    ready,
    publish(exchange, routingKey, body, headers) {
      const content = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
      currentChannel().publish(exchange, routingKey, content, { persistent: true, headers });
    },
    async collect(exchange, pattern) {
      const channel = await ready();
      const received: Message[] = [];
      const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      await channel.bindQueue(queue, exchange, pattern);
      await channel.consume(queue, (message) => message && received.push(message), { noAck: true });
      return received;
    },
    async drain(queue, count, timeoutMs = 10_000) {
      await waitFor(`${count} messages in ${queue}`, async () => (await (await ready()).checkQueue(queue)).messageCount >= count, { timeoutMs });
      const channel = await ready();
      const taken: Message[] = [];
      for (let message = await channel.get(queue); message !== false; message = await channel.get(queue)) {
        channel.ack(message);
        taken.push(message);
      }
      return taken;
    },
    async messageCount(queue) {
      return (await (await ready()).checkQueue(queue)).messageCount;
    },
    async close() {
      closed = true;
      const last = current;
      current = undefined;
      await last?.channel.close().catch(() => undefined);
      await last?.connection.close().catch(() => undefined);
    },
  };
}
