/**
 * Consuming with manual acks that survive reconnects. A delivery tag is only valid on
 * the channel it came from: after a reconnect the broker has already requeued what the
 * old channel held, so acking it on the new channel would be wrong (and closes that
 * channel). Each delivery remembers its channel and settles only on that one.
 */
import type { ChannelWrapper } from 'amqp-connection-manager';
import type { Channel, ConsumeMessage } from 'amqplib';
import type { Logger } from '../logging.ts';
import type { BusConnection } from './connect.ts';

export interface Delivery {
  queue: string;
  message: ConsumeMessage;
  ack(): void;
  /** Give it back for another try (our queues have no delivery limit: a requeue never dead-letters). */
  requeue(): void;
  /** Reject without requeue: the broker dead-letters it if the queue has a dead-letter exchange, else drops it. */
  reject(): void;
}

export interface Consumer {
  channel: ChannelWrapper;
  /** Stops new deliveries; what is in flight may still be settled. */
  cancel(): Promise<void>;
  close(): Promise<void>;
}

export async function startConsumer(
  connection: BusConnection,
  options: {
    name: string;
    log: Logger;
    queues: readonly string[];
    /** Unacked deliveries per queue. */
    prefetch: number;
    setup: (channel: Channel) => Promise<void>;
    onDelivery: (delivery: Delivery) => void;
  },
): Promise<Consumer> {
  let current: Channel | undefined;
  const channel = connection.createChannel({
    name: options.name,
    confirm: false,
    setup: async (ch: Channel) => {
      current = ch;
      await options.setup(ch);
    },
  });
  channel.on('error', (err) => options.log.warn({ err, channel: options.name }, 'channel setup failed'));

  const settle = (origin: Channel | undefined, message: ConsumeMessage, action: (ch: Channel) => void): void => {
    if (origin === undefined || origin !== current) {
      options.log.debug({ deliveryTag: message.fields.deliveryTag }, 'delivery from a closed channel not settled: the broker redelivers it');
      return;
    }
    try {
      action(origin);
    } catch (err) {
      options.log.warn({ err }, 'could not settle delivery: the broker redelivers it');
    }
  };

  for (const queue of options.queues) {
    await channel.consume(
      queue,
      (message) => {
        const origin = current;
        options.onDelivery({
          queue,
          message,
          ack: () => settle(origin, message, (ch) => ch.ack(message)),
          requeue: () => settle(origin, message, (ch) => ch.nack(message, false, true)),
          reject: () => settle(origin, message, (ch) => ch.nack(message, false, false)),
        });
      },
      { prefetch: options.prefetch, noAck: false },
    );
  }

  return {
    channel,
    cancel: () => channel.cancelAll(),
    close: () => channel.close(),
  };
}
