/**
 * A downstream observer of the bus: one exclusive, auto-deleted queue bound to the
 * exchanges and patterns asked for, recording each message with the time it arrived
 * (performance.now(), and Date.now() for comparing with timestamps inside messages).
 * Bodies are kept raw and parsed afterwards, so the tap costs little while timing.
 */
import amqplib, { type Channel, type ChannelModel } from 'amqplib';
import { declareCoreTopology } from '../../shared/bus/topology.ts';

export interface Tapped {
  exchange: string;
  routingKey: string;
  content: Buffer;
  /** performance.now() at arrival. */
  at: number;
  /** Date.now() at arrival. */
  wallAt: number;
}

export interface BusTap {
  messages: Tapped[];
  count(exchange: string): number;
  /** Called on every arrival (after it is recorded). */
  onMessage(listener: (message: Tapped) => void): void;
  close(): Promise<void>;
}

export async function tapBus(amqpUrl: string, bindings: ReadonlyArray<{ exchange: string; pattern: string }>): Promise<BusTap> {
  const connection: ChannelModel = await amqplib.connect(amqpUrl);
  const channel: Channel = await connection.createChannel();
  await declareCoreTopology(channel);
  const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
  for (const { exchange, pattern } of bindings) await channel.bindQueue(queue, exchange, pattern);
  const messages: Tapped[] = [];
  const counts = new Map<string, number>();
  const listeners: Array<(message: Tapped) => void> = [];
  await channel.consume(
    queue,
    (message) => {
      if (message === null) return;
      const tapped: Tapped = {
        exchange: message.fields.exchange,
        routingKey: message.fields.routingKey,
        content: message.content,
        at: performance.now(),
        wallAt: Date.now(),
      };
      messages.push(tapped);
      counts.set(tapped.exchange, (counts.get(tapped.exchange) ?? 0) + 1);
      for (const listener of listeners) listener(tapped);
    },
    { noAck: true },
  );
  let closed: Promise<void> | undefined;
  return {
    messages,
    count: (exchange) => counts.get(exchange) ?? 0,
    onMessage: (listener) => listeners.push(listener),
    close() {
      closed ??= (async () => {
        await channel.close().catch(() => undefined);
        await connection.close().catch(() => undefined);
      })();
      return closed;
    },
  };
}
