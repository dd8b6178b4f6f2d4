import type { ChannelWrapper } from 'amqp-connection-manager';
import type { Channel } from 'amqplib';
import type { Logger } from '../logging.ts';
import type { BusConnection } from './connect.ts';

export type Publisher = ChannelWrapper;

/** A confirm channel: `publish` resolves once the broker has taken responsibility for the message. */
export function createPublisher(
  connection: BusConnection,
  options: { name: string; log: Logger; setup: (channel: Channel) => Promise<void> },
): Publisher {
  const channel = connection.createChannel({
    name: options.name,
    confirm: true,
    publishTimeout: 60_000,
    setup: options.setup,
  });
  channel.on('error', (err) => options.log.warn({ err, channel: options.name }, 'channel setup failed'));
  return channel;
}

/** Publishes a persistent JSON message and waits for the broker's confirm. */
export async function publishJson(
  publisher: Publisher,
  exchange: string,
  routingKey: string,
  body: Buffer,
  properties: { messageId: string; type: string; headers?: Record<string, unknown>; userId?: string | undefined },
): Promise<void> {
  await publisher.publish(exchange, routingKey, body, {
    persistent: true,
    contentType: 'application/json',
    messageId: properties.messageId,
    type: properties.type,
    timestamp: Math.floor(Date.now() / 1000),
    headers: properties.headers,
    // The broker refuses a user_id that is not the connection's user: consumers can trust it.
    userId: properties.userId,
  });
}
