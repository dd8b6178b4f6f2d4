import type { Logger } from '../logging.ts';
import { messagesDeadLettered } from '../metrics.ts';
import type { Delivery } from './consumer.ts';
import { publishJson, type Publisher } from './publisher.ts';
import { Exchange, ORIGIN_EXCHANGE_HEADER, ORIGIN_QUEUE_HEADER, ORIGIN_ROUTING_KEY_HEADER, REASON_HEADER } from './topology.ts';

/**
 * Moves a message that can never be processed to the dead-letter queue, with the reason
 * in a header, then acks it. If the dead-letter publish fails the message is requeued:
 * a rejected message is never silently dropped.
 */
export async function deadLetter(publisher: Publisher, delivery: Delivery, reason: string, log: Logger): Promise<void> {
  const { message, queue } = delivery;
  log.warn({ queue, reason, messageId: message.properties.messageId }, 'message rejected to the dead-letter queue');
  try {
    await publishJson(publisher, Exchange.deadLetter, message.fields.routingKey, message.content, {
      messageId: message.properties.messageId ?? `dead-letter-${Date.now()}`,
      type: message.properties.type ?? 'unknown',
      headers: {
        ...message.properties.headers,
        [REASON_HEADER]: reason,
        [ORIGIN_QUEUE_HEADER]: queue,
        [ORIGIN_EXCHANGE_HEADER]: message.fields.exchange,
        [ORIGIN_ROUTING_KEY_HEADER]: message.fields.routingKey,
      },
    });
    delivery.ack();
    messagesDeadLettered.inc({ queue });
  } catch (err) {
    log.error({ err, queue }, 'dead-lettering failed, requeueing the message');
    delivery.requeue();
  }
}
