/**
 * The consume → validate → write in batches → ack loop every database-writing consumer
 * shares. Invalid messages are dead-lettered with the reason; a batch whose write fails
 * on a transient database error is retried with backoff while its deliveries stay
 * unacked; any other failure requeues them (the queue's delivery limit then
 * dead-letters a message that keeps failing). Acks happen only after the write.
 */
import type { z } from 'zod';
import { createBatcher } from '../batcher.ts';
import { isTransientDatabaseError } from '../db/transient-error.ts';
import { coerceError, isRetryableError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { messagesConsumed } from '../metrics.ts';
import { parseMessage } from '../messages/codec.ts';
import { retryWithBackoff } from '../retry.ts';
import type { BusConnection } from './connect.ts';
import { type Delivery, startConsumer } from './consumer.ts';
import { deadLetter } from './dead-letter.ts';
import type { Publisher } from './publisher.ts';
import { declareCoreTopology } from './topology.ts';

export interface BatchConsumer {
  /** Stops intake, writes and acks what is in hand, closes the channel. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startBatchConsumer<S extends z.ZodType, R>(
  bus: BusConnection,
  options: {
    name: string;
    log: Logger;
    queue: string;
    schema: S;
    batchSize: number;
    lingerMs: number;
    /** Where rejected messages are dead-lettered from. */
    publisher: Publisher;
    write: (messages: Array<z.output<S>>) => Promise<R>;
    /** After the write and the acks. */
    onWritten?: (result: R, messages: number, durationMs: number) => void;
  },
): Promise<BatchConsumer> {
  const { log } = options;
  const stopping = new AbortController();

  const flush = async (deliveries: Delivery[]): Promise<void> => {
    const started = Date.now();
    const valid: Array<{ delivery: Delivery; message: z.output<S> }> = [];
    for (const delivery of deliveries) {
      const parsed = parseMessage(options.schema, delivery.message.content);
      if (parsed.ok) valid.push({ delivery, message: parsed.value });
      else await deadLetter(options.publisher, delivery, parsed.reason, log);
    }
    if (valid.length === 0) return;
    const messages = valid.map((entry) => entry.message);
    let result: R;
    try {
      result = await retryWithBackoff(() => options.write(messages), {
        shouldRetry: (err) => isTransientDatabaseError(err) || isRetryableError(err),
        signal: stopping.signal,
        onRetry: (err, attempt, delayMs) =>
          log.warn({ err: coerceError(err), attempt, delayMs, messages: messages.length }, 'batch rolled back, retrying'),
      });
    } catch (err) {
      log.error({ err: coerceError(err), messages: messages.length }, 'batch failed, requeueing its messages');
      for (const { delivery } of valid) delivery.requeue();
      return;
    }
    for (const { delivery } of valid) delivery.ack();
    messagesConsumed.inc({ queue: options.queue }, valid.length);
    options.onWritten?.(result, messages.length, Date.now() - started);
  };

  const batcher = createBatcher<Delivery>({ maxSize: options.batchSize, lingerMs: options.lingerMs, flush });
  const consumer = await startConsumer(bus, {
    name: options.name,
    log,
    queues: [options.queue],
    // Room for the next batch to fill while this one is written.
    prefetch: options.batchSize * 2,
    setup: declareCoreTopology,
    onDelivery: (delivery) => batcher.add(delivery),
  });

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        await consumer.cancel();
        await batcher.drain();
        stopping.abort();
        await consumer.close();
      })();
      return stopped;
    },
  };
}
